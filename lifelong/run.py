"""Wire a config into stream -> strategies -> orchestrator -> record -> references -> metrics -> report.

Python users call `run_experiment` (or `resume_experiment`); the CLI is a thin shell over them.
"""

from __future__ import annotations

import platform
import subprocess
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
import yaml

from lifelong.callbacks import Callback
from lifelong.config import REPO_ROOT, ExperimentConfig
from lifelong.errors import ConfigError, FolderError
from lifelong.evaluation.analysis import analyse, reference_scores
from lifelong.evaluation.record import LifetimeRecord
from lifelong.orchestrator import play
from lifelong.preflight import check_stream_fits
from lifelong.progress import ProgressDisplay
from lifelong.references import ReferenceCache, compute_references
from lifelong.report import write_report
from lifelong.run_folder import RunFolder
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.registry import strategy_class
from lifelong.streams.builders import build_stream
from lifelong.streams.task import Stream


@dataclass
class RunResult:
    folder: Path
    records: list[LifetimeRecord]
    metrics: dict
    references: dict | None  # what references.json holds, with the cache's hit and miss counts
    report: list[Path]  # report.html and report.md


class RecordWriter(Callback):
    """Keeps the run folder current: the record after every evaluation, events, checkpoints, errors."""

    def __init__(self, folder: RunFolder, records: list[LifetimeRecord]):
        self.folder, self.records = folder, records

    def on_run_start(self, stream, record) -> None:
        if record not in self.records:
            self.records.append(record)
        self.folder.append_event({"event": "run_start", "strategy": record.strategy, "seed": record.seed,
                                  "resumed_after": record.completed, "time": time.time()})

    def on_eval(self, after_task, record) -> None:
        self.folder.write_records(self.records)

    def on_task_end(self, task, record, strategy) -> None:
        self.folder.save_checkpoint(record.strategy, record.seed,
                                    {"strategy": strategy.state_dict(), "record": record.to_state()})
        self.folder.append_event({"event": "task_end", "strategy": record.strategy, "seed": record.seed,
                                  "task": task.id, "train_seconds": record.train_seconds[task.id],
                                  "stats": record.train_stats[-1], "scores": record.scores[task.id + 1]})

    def on_exception(self, error, record) -> None:
        self.folder.write_text("error.txt", "".join(traceback.format_exception(error)))
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
    root = Path(out) if out else Path(config.out) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = root, 1
    while candidate.exists() and any(candidate.iterdir()) and out is None:
        n += 1
        candidate = root.with_name(f"{root.name}-{n}")
    return RunFolder(candidate)


def run_experiment(config: ExperimentConfig, *, out: str | Path | None = None, callbacks: list[Callback] = (),
                   progress: bool = True) -> RunResult:
    """Run every strategy of the config over every seed on its stream; write and return the results."""
    device = prepare_runtime(config)
    stream = build_stream(config.stream)
    check_stream_fits(config, stream)  # a mistake found now leaves no run folder behind
    folder = new_run_folder(config, out)
    folder.write_yaml("config.yaml", config.model_dump(mode="json", by_alias=True))
    folder.write_json("environment.json", environment(device))
    return _play_all(config, stream, folder, device, {}, callbacks, progress)


def resume_experiment(path: str | Path, *, callbacks: list[Callback] = (), progress: bool = True) -> RunResult:
    """Go on with an interrupted run from its last completed task; ends with the same record."""
    folder = RunFolder(path)
    if not folder.file("config.yaml").is_file():
        raise FolderError(f"{path}: no config.yaml here; is this a run folder written by `lifelong run`?")
    config = ExperimentConfig.model_validate(yaml.safe_load(folder.file("config.yaml").read_text()))
    device = prepare_runtime(config)
    stream = build_stream(config.stream)
    states = {}
    for seed in config.seeds:
        for entry in config.strategies:
            checkpoint = folder.load_checkpoint(entry.display_name, seed)
            if checkpoint is not None:
                states[(entry.display_name, seed)] = checkpoint
    folder.file("error.txt").unlink(missing_ok=True)
    return _play_all(config, stream, folder, device, states, callbacks, progress)


def _play_all(config, stream: Stream, folder: RunFolder, device, states: dict, callbacks, progress: bool) -> RunResult:
    records: list[LifetimeRecord] = []
    total = len(config.seeds) * len(config.strategies) * len(stream)
    display = ProgressDisplay(total) if progress else None
    hooks = [RecordWriter(folder, records), *([display] if display else []), *_optional_hooks(config, folder),
             *callbacks]
    try:
        for seed in config.seeds:
            for entry in config.strategies:
                strategy = strategy_class(entry.name)(entry.params)
                ctx = StrategyContext(stream, config.model, config.training_for(entry), device, seed,
                                      config.evaluation)
                strategy.setup(ctx)
                saved = states.get((entry.display_name, seed))
                record = None
                if saved is not None:
                    strategy.load_state_dict(saved["strategy"])
                    record = LifetimeRecord.from_state(saved["record"])
                    if display:
                        display.bar.advance(display.bar_id, record.completed)
                play(strategy, ctx, entry.display_name, hooks, record)
    finally:
        if display:
            display.close()
    references = None
    if config.references.enabled:
        log = (lambda line: display.console.print(line, highlight=False, markup=False)) if display else None
        references = compute_references(config, stream, device, records,
                                        ReferenceCache(Path(config.references.cache_dir)), log)
        folder.write_json("references.json", references)
    results = analyse(records, reference_scores(references), config.analysis.tolerance)
    folder.write_json("metrics.json", results)
    return RunResult(folder.path, records, results, references, write_report(folder.path).written)


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
