"""The run folder: where a run's files live and how they are written (atomically: temp file + rename).

Layout: config.yaml, environment.json, record.rows.jsonl (the append-only record, see record_log),
record.csv (+ record.parquet with pyarrow), timings.csv, curves.csv (few-shot adaptation curves),
within_task.csv (learning curves during training, with `evaluation.within_task_every`) made from it
at the end, metrics.json, references.json, report.html, report.md, events.jsonl,
checkpoints/<label>-seed<N>.pt (and .prev.pt, the one before), checkpoints/config.json (the resolved
config the checkpoints belong to), error.txt on failure, .lock while a run or resume holds the folder.
Every path stays inside the folder: a name that would leave it is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
import yaml
from filelock import FileLock, Timeout

from lifelong.errors import FolderError
from lifelong.file_names import safe_file_name
from lifelong.evaluation.record import LifetimeRecord
from lifelong.record_log import LOG_NAME, RecordLog

LOCK_NAME = ".lock"


class RunFolderError(FolderError):
    """The run folder cannot be used as asked (busy, not empty, damaged); the message says what to do."""


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, then rename over `path`: readers never see half a file."""
    with atomic_file(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


@contextmanager
def atomic_file(path: Path):
    """A binary handle on a temp file beside `path`, renamed over it when the block ends without error:
    for files written piece by piece (long records), never whole in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def inside(root: Path, name: str, what: str) -> Path:
    """`root / name`, refused when it would resolve outside `root` (`..`, an absolute path, a link out)."""
    path = root / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise RunFolderError(f"{what} {name!r} would write outside {root}; use a plain name without '..' or '/'")
    return path


def safe_name(name: str, what: str) -> str:
    """A label or config name used as one file name, by the rule validation applies (`safe_file_name`):
    checked again here because the Python API can build a config without validating it."""
    try:
        return safe_file_name(name)
    except ValueError as error:
        raise RunFolderError(f"{what} {error}") from None


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a run folder; give --out a folder path")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"cannot make the run folder {self.path} ({error.strerror}); choose another --out "
                                 "(or `out:` in the config)") from None
        self.log = RecordLog(self.path / LOG_NAME)

    def file(self, name: str) -> Path:
        return inside(self.path, name, "file name")

    @contextmanager
    def locked(self):
        """Hold the folder for one run or resume: a second one on the same folder fails at once."""
        lock = FileLock(self.path / LOCK_NAME, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderError(f"{self.path} is in use by another `lifelong run` or `lifelong resume` (it holds "
                                 f"{self.path / LOCK_NAME}); wait for it to finish or choose another --out") from None
        try:
            yield self
        finally:
            lock.release()

    def is_empty(self) -> bool:
        return all(entry.name == LOCK_NAME for entry in self.path.iterdir())

    def empty(self) -> None:
        """Remove everything but the lock (`--force`)."""
        for entry in self.path.iterdir():
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.file(name), text)

    def write_json(self, name: str, data) -> None:
        self.write_text(name, json.dumps(data, indent=2, default=_json_default) + "\n")

    def write_yaml(self, name: str, data) -> None:
        self.write_text(name, yaml.safe_dump(data, sort_keys=False))

    def read_json(self, name: str):
        return json.loads(self.file(name).read_text())

    def append_event(self, event: dict) -> None:
        """One JSON line per event; appends are line-sized, so a crash loses at most the last line."""
        with self.file("events.jsonl").open("a") as handle:
            handle.write(json.dumps(event, default=_json_default) + "\n")

    def write_tables(self) -> None:
        """record.csv/.parquet, timings.csv, curves.csv and within_task.csv in full, from the record log."""
        self.write_records(self.log.read())

    def write_records(self, records: list[LifetimeRecord]) -> None:
        """The record in long form (CSV, and parquet when pyarrow is there) plus per-task timings.

        Written a block of rows at a time, so a T = 1,000 record (a million rows per lifetime) never
        sits in memory as one table or one string."""
        if not records:
            return
        with atomic_file(self.file("record.csv")) as handle:
            for i, block in enumerate(_record_blocks(records)):
                block.to_csv(handle, header=i == 0, index=False)
        timings = pd.concat([_timings(r) for r in records], ignore_index=True)
        atomic_write(self.file("timings.csv"), timings.to_csv(index=False))
        for name, frames in (("curves.csv", [r.curves_frame() for r in records]),
                             ("within_task.csv", [r.within_task_frame() for r in records])):
            frames = [frame for frame in frames if frame is not None]
            if frames:
                atomic_write(self.file(name), pd.concat(frames, ignore_index=True).to_csv(index=False))
        try:
            import pyarrow
            import pyarrow.parquet
        except ImportError:
            return  # optional: parquet only when installed
        with atomic_file(self.file("record.parquet")) as handle:
            writer = None
            for block in _record_blocks(records):
                table = pyarrow.Table.from_pandas(block, preserve_index=False)
                writer = writer or pyarrow.parquet.ParquetWriter(handle, table.schema)
                writer.write_table(table)
            writer.close()

    def checkpoint_path(self, label: str, seed: int, previous: bool = False) -> Path:
        name = f"{safe_name(label, 'strategy label')}-seed{seed}{'.prev' if previous else ''}.pt"
        return self.file(f"checkpoints/{name}")

    def save_checkpoint(self, label: str, seed: int, state: dict) -> None:
        """Write the new checkpoint beside the last one, then rotate: the last becomes <name>.prev.pt."""
        path = self.checkpoint_path(label, seed)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            torch.save(state, tmp)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if path.exists():
            os.replace(path, self.checkpoint_path(label, seed, previous=True))
        os.replace(tmp, path)

    def load_checkpoint(self, label: str, seed: int, note=print) -> dict | None:
        """The last checkpoint of (label, seed); when it is damaged, the one before it, saying so."""
        path, previous = self.checkpoint_path(label, seed), self.checkpoint_path(label, seed, previous=True)
        if not path.is_file():
            if previous.is_file():  # stopped between the two renames of save_checkpoint
                return _load(previous)
            return None
        try:
            return _load(path)
        except RunFolderError as damaged:
            if not previous.is_file():
                raise RunFolderError(f"{damaged}; there is no earlier checkpoint: delete it to train {label!r} "
                                     f"seed {seed} again from its first task") from None
            state = _load(previous)
            note(f"{damaged}; resuming {label!r} seed {seed} from the checkpoint before it, {previous.name} "
                 f"(after task {state['completed']})")
            return state


def _load(path: Path) -> dict:
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, pickle and zip errors on a damaged file
        raise RunFolderError(f"checkpoint {path} is damaged ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "log_offset" not in state:
        raise RunFolderError(f"checkpoint {path} was written by an older version of lifelong and cannot be "
                             "resumed; start the run again")
    return state


RECORD_BLOCK_ROWS = 20_000  # rows of the long form built at once when the tables are written


def _record_blocks(records: list[LifetimeRecord]):
    """The long form of every record, in blocks of whole rows of R of about RECORD_BLOCK_ROWS rows."""
    for record in records:
        step = max(1, RECORD_BLOCK_ROWS // record.n_tasks)
        for start in range(0, record.n_tasks + 1, step):
            yield record.to_frame(range(start, min(start + step, record.n_tasks + 1)))


def _timings(record: LifetimeRecord) -> pd.DataFrame:
    """Per task: time, peak memory and loss, then what its training and the evaluation after it cost
    (columns of lifelong.cost.meter; none with `cost: off`)."""
    untrained = [None] * (record.n_tasks - len(record.train_stats))
    table = pd.DataFrame({
        "strategy": record.strategy, "seed": record.seed, "task": range(record.n_tasks),
        "task_name": record.task_names, "train_seconds": record.train_seconds,
        "peak_memory_mb": record.peak_memory_mb,
        "train_loss": [s.get("train_loss") for s in record.train_stats] + untrained,
    })
    costs = [{**spent, **record.eval_cost.get(task + 1, {})} for task, spent in enumerate(record.task_cost)]
    if any(costs):
        table = table.join(pd.DataFrame(costs + [{}] * len(untrained)))
    return table


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def finish_tables(run_dir: str | Path) -> None:
    """Write record.csv and the other tables from the record log when they are older than it (a run
    stopped before its end); `lifelong report` calls this first."""
    path = Path(run_dir)
    log, table = path / LOG_NAME, path / "record.csv"
    if not log.is_file() or (table.is_file() and table.stat().st_mtime_ns >= log.stat().st_mtime_ns):
        return
    RunFolder(path).write_tables()
