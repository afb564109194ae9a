"""Wire a config into stream -> strategies -> orchestrator -> record -> references -> metrics -> report.

Python users call `run_experiment` (or `resume_experiment`); the CLI is a thin shell over them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from lifelong.callbacks import Callback
from lifelong.config import REPO_ROOT, ExperimentConfig, load_config
from lifelong.errors import ConfigError, FolderError
from lifelong.evaluation.analysis import analyse, reference_scores
from lifelong.evaluation.flips import attach_flips
from lifelong.evaluation.record import LifetimeRecord
from lifelong.orchestrator import play
from lifelong.preflight import check_stream_fits
from lifelong.progress import ProgressDisplay
from lifelong.references import ReferenceCache, compute_references
from lifelong.report import write_report
from lifelong.record_log import LOG_NAME
from lifelong.run_folder import RunFolder, RunFolderError, safe_name
from lifelong.signals import interrupts_deferred
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.registry import strategy_class
from lifelong.streams.builders import build_stream
from lifelong.streams.task import Stream

CONFIG_STATE = "checkpoints/config.json"  # the resolved config and its hash, for resume to compare with


@dataclass
class RunResult:
    folder: Path
    records: list[LifetimeRecord]
    metrics: dict
    references: dict | None  # what references.json holds, with the cache's hit and miss counts
    report: list[Path]  # report.html and report.md


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run: `where` says which strategy, seed and task; the folder can be resumed."""

    def __init__(self, folder: Path, where: str):
        super().__init__(where)
        self.folder, self.where = folder, where


class RecordWriter(Callback):
    """Keeps the run folder current: each evaluation's row and each task's stats appended to the record
    log, a checkpoint (strategy state + the log's length) after every task, events, errors. SIGINT
    waits until these writes are done, so an interrupted run leaves only whole files."""

    def __init__(self, folder: RunFolder, records: list[LifetimeRecord], config_sha256: str):
        self.folder, self.records, self.config_sha256 = folder, records, config_sha256

    def on_run_start(self, stream, record) -> None:
        if record not in self.records:
            self.records.append(record)
        with interrupts_deferred():
            if record.completed == 0:
                self.folder.log.start(record)
            self.folder.append_event({"event": "run_start", "strategy": record.strategy, "seed": record.seed,
                                      "resumed_after": record.completed, "time": time.time()})

    def on_eval(self, after_task, record) -> None:
        with interrupts_deferred():
            self.folder.log.row(record, after_task)

    def on_task_end(self, task, record, strategy) -> None:
        with interrupts_deferred():
            offset = self.folder.log.task(record, task.id)
            self.folder.save_checkpoint(record.strategy, record.seed, {
                "strategy": strategy.state_dict(), "completed": record.completed, "log_offset": offset,
                "config_sha256": self.config_sha256})
            self.folder.append_event({"event": "task_end", "strategy": record.strategy, "seed": record.seed,
                                      "task": task.id, "train_seconds": record.train_seconds[task.id],
                                      "stats": record.train_stats[-1], "scores": record.scores[task.id + 1]})

    def on_exception(self, error, record) -> None:
        self.folder.append_event({"event": "error", "strategy": record.strategy, "seed": record.seed,
                                  "completed_tasks": record.completed, "error": f"{type(error).__name__}: {error}"})


def prepare_runtime(config: ExperimentConfig) -> torch.device:
    """Set the CPU thread count the config asks for and resolve its device."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    return resolve_device(config.device)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else name if name != "auto" else "cpu")


def new_run_folder(config: ExperimentConfig, out: str | Path | None) -> RunFolder:
    """`out` as given, or a new folder <config.out>/<name>-<time>[-n]: created here, so never one that
    another run made (mkdir fails on an existing folder, even when two runs start in the same second)."""
    if out is not None:
        return RunFolder(out)
    root = Path(config.out)
    stem = f"{safe_name(config.name, 'config name')}-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = root / (stem if n == 1 else f"{stem}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return RunFolder(candidate)


def run_experiment(config: ExperimentConfig, *, out: str | Path | None = None, force: bool = False,
                   callbacks: list[Callback] = (), progress: bool = True) -> RunResult:
    """Run every strategy of the config over every seed on its stream; write and return the results.

    `out` must be a new or empty folder, or a run folder to replace with `force`; the stream is built
    before the folder is made, so a stream that cannot be built leaves nothing behind.
    """
    device = prepare_runtime(config)
    stream = build_stream(config.stream)
    check_stream_fits(config, stream)  # a mistake found now leaves no run folder behind
    folder = new_run_folder(config, out)
    with folder.locked():
        _claim(folder, force)
        sha256, resolved = config_digest(config)
        folder.write_json(CONFIG_STATE, {"sha256": sha256, "config": resolved})
        folder.write_yaml("config.yaml", config.model_dump(mode="json", by_alias=True))
        folder.write_json("environment.json", environment(device))
        return _play_all(config, stream, folder, device, {}, {}, sha256, callbacks, progress)


def _claim(folder: RunFolder, force: bool) -> None:
    """Refuse a folder holding anything, unless `force` and it is a run folder (then empty it)."""
    if folder.is_empty():
        return
    if not force:
        raise RunFolderError(f"{folder.path} is not empty; pass --force to replace what is there, or "
                             f"`lifelong resume {folder.path}` to go on with the run it holds")
    if not any(folder.file(name).exists() for name in ("config.yaml", LOG_NAME, "events.jsonl")):
        raise RunFolderError(f"{folder.path} is not empty and is not a run folder; --force only replaces run "
                             "folders: choose a new or empty --out")
    folder.empty()


def config_digest(config: ExperimentConfig) -> tuple[str, dict]:
    """The resolved config as plain data, and its SHA-256: what checkpoints are tied to."""
    resolved = config.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest(), resolved


def config_changes(old, new, prefix: str = "") -> list[str]:
    """`dotted.field: old -> new` for every field that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new), key=str)
                for line in config_changes(old.get(key, "(absent)"), new.get(key, "(absent)"), f"{prefix}{key}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new)) for line in config_changes(a, b, f"{prefix}{i}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def resume_experiment(path: str | Path, *, callbacks: list[Callback] = (), progress: bool = True,
                      note=None) -> RunResult:
    """Go on with an interrupted run from its last checkpoint; ends with the same record.

    Refuses a folder whose config.yaml changed since the run started, and checkpoints of another
    config. A damaged checkpoint is replaced by the one before it (<name>.prev.pt), said through
    `note` (default: stderr); rows logged after the checkpoints are cut and done again.
    """
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FolderError(f"{path}: no config.yaml here; is this a run folder written by `lifelong run`?")
    config = load_config(path / "config.yaml")
    folder = RunFolder(path)
    sha256, resolved = config_digest(config)
    _check_unchanged(folder, sha256, resolved)
    device = prepare_runtime(config)
    stream = build_stream(config.stream)
    with folder.locked():
        states = {}
        for seed in config.seeds:
            for entry in config.strategies:
                state = folder.load_checkpoint(entry.display_name, seed, note or _to_stderr)
                if state is not None:
                    if state.get("config_sha256") != sha256:
                        raise RunFolderError(f"{folder.checkpoint_path(entry.display_name, seed)} belongs to another "
                                             "config than this folder's config.yaml; it cannot be resumed here")
                    states[(entry.display_name, seed)] = state
        records = _records_at_checkpoints(folder, states)
        folder.file("error.txt").unlink(missing_ok=True)
        return _play_all(config, stream, folder, device, states, records, sha256, callbacks, progress)


def _check_unchanged(folder: RunFolder, sha256: str, resolved: dict) -> None:
    try:
        stored = folder.read_json(CONFIG_STATE)
    except FileNotFoundError:
        raise RunFolderError(f"{folder.file(CONFIG_STATE)} is missing: the run was written by an older version or "
                             "stopped before it started; start it again with `lifelong run`") from None
    if stored["sha256"] != sha256:
        changes = "\n  ".join(config_changes(stored["config"], resolved))
        raise RunFolderError(f"{folder.file('config.yaml')} was edited since the run started, so its checkpoints "
                             f"do not belong to it:\n  {changes}\nundo the edit to resume, or start a new run "
                             "with the new config")


def _records_at_checkpoints(folder: RunFolder, states: dict) -> dict[tuple[str, int], LifetimeRecord]:
    """Rebuild the records from the record log up to the last checkpoint, then cut what follows."""
    offset = max((state["log_offset"] for state in states.values()), default=0)
    folder.log.check_reaches(offset)
    records = {(r.strategy, r.seed): r for r in folder.log.read(up_to=offset)}
    for key in records.keys() | states.keys():
        logged = records[key].completed if key in records else None
        saved = states[key]["completed"] if key in states else None
        if logged != saved:
            raise RunFolderError(f"{folder.path}: {key[0]!r} seed {key[1]} has {saved or 0} tasks checkpointed "
                                 f"but {logged or 0} in {LOG_NAME}; the folder was changed by hand, so it cannot be "
                                 "resumed")
    folder.log.truncate(offset)
    return records


def _to_stderr(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _play_all(config, stream: Stream, folder: RunFolder, device, states: dict, resumed: dict, sha256: str,
              callbacks, progress: bool) -> RunResult:
    records: list[LifetimeRecord] = []
    total = len(config.seeds) * len(config.strategies) * len(stream)
    display = ProgressDisplay(total) if progress else None
    hooks = [RecordWriter(folder, records, sha256), *([display] if display else []),
             *_optional_hooks(config, folder), *callbacks]
    try:
        for seed in config.seeds:
            for entry in config.strategies:
                strategy = strategy_class(entry.name)(entry.params)
                ctx = StrategyContext(stream, config.model, config.training_for(entry), device, seed,
                                      config.evaluation)
                strategy.setup(ctx)
                saved = states.get((entry.display_name, seed))
                if saved is not None:
                    strategy.load_state_dict(saved["strategy"])
                    if display:
                        display.bar.advance(display.bar_id, saved["completed"])
                play(strategy, ctx, entry.display_name, hooks, resumed.get((entry.display_name, seed)),
                     config.cost)
        if display:
            display.close()
        folder.write_tables()
        references = None
        if config.references.enabled:
            log = (lambda line: display.console.print(line, highlight=False, markup=False)) if display else None
            references = compute_references(config, stream, device, records,
                                            ReferenceCache(Path(config.references.cache_dir)), log)
            folder.write_json("references.json", references)
    except KeyboardInterrupt as stop:
        where = _where(records, config, len(stream))
        _stopped(folder, f"stopped by Ctrl-C: {where}; `lifelong resume` goes on with it\n")
        raise RunInterrupted(folder.path, where) from stop
    except BaseException:
        _stopped(folder, traceback.format_exc())
        raise
    finally:
        if display:
            display.close()  # closing twice is harmless
    attach_flips(records, folder.log.path)
    if config.l2m:
        from lifelong.l2m.export import attach, export_run  # l2logger: only when asked for

        export_run(folder.path, records)
        attach(records, folder.path)
    results = analyse(records, reference_scores(references), config.analysis.tolerance)
    folder.write_json("metrics.json", results)
    return RunResult(folder.path, records, results, references, write_report(folder.path).written)


def _stopped(folder: RunFolder, why: str) -> None:
    """Say why in error.txt and write the tables of what was done, holding Ctrl-C off meanwhile."""
    with interrupts_deferred():
        folder.write_text("error.txt", why)
        folder.write_tables()


def _where(records: list[LifetimeRecord], config, n_tasks: int) -> str:
    runs = len(config.seeds) * len(config.strategies)
    if not records:
        return "before the first task"
    last = records[-1]
    if len(records) == runs and last.completed == n_tasks:
        return "after every strategy and seed had finished, while computing references or writing files"
    k = last.completed
    saved = "none of its tasks saved yet" if k == 0 else "task 1 saved" if k == 1 else f"tasks 1-{k} saved"
    return (f"strategy {last.strategy!r} seed {last.seed}, in task {k + 1} of {n_tasks} ({saved}); "
            f"strategy x seed {len(records)} of {runs}")


def _optional_hooks(config: ExperimentConfig, folder: RunFolder) -> list[Callback]:
    if not config.tensorboard:
        return []
    from lifelong.tensorboard_log import TensorBoardLogger  # imports tensorboard: only when asked for

    return [TensorBoardLogger(folder.file("tensorboard"))]


def environment(device: torch.device) -> dict:
    def package(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(), "platform": platform.platform(),
        "packages": {p: package(p) for p in ("lifelong", "torch", "numpy", "pandas", "pydantic", "scikit-learn")},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(), "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
