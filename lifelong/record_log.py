"""The append-only record log (`record.rows.jsonl`): what a run has measured, one JSON line per fact.

Writing the whole record after every evaluation costs O(T^2) per task; appending the new row costs
O(T). Three kinds of line, each tagged with its (strategy, seed):

    {"line": "record", "strategy", "seed", "task_names", "kind", "steps"}   a lifetime starts
    {"line": "row", "strategy", "seed", "after_task", "scores", "losses", "curves", "cost"}   one evaluation
    {"line": "task", "strategy", "seed", "task", "train_seconds", "peak_memory_mb", "stats", "cost"}   one task
    {"line": "correct", "strategy", "seed", "after_task", "tasks", "sizes", "bits"}   a row's per-example
        correctness, bit-packed (classification; see evaluation/correctness.py), read by evaluation/flips.py

Checkpoints hold the byte offset of the log after their task, so a resumed run cuts the log back
there and appends again what it redoes. A line is written with one write call and ends with a
newline; a last line without one (torn by a crash) is ignored. Floats go through JSON's exact repr,
so a record rebuilt from the log equals the one in memory bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lifelong.errors import FolderError
from lifelong.evaluation.record import LifetimeRecord

LOG_NAME = "record.rows.jsonl"


class RecordLogError(FolderError):
    """The log cannot be read back as a run wrote it; the message names the file and the line."""


class RecordLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def start(self, record: LifetimeRecord) -> int:
        steps = None if record.curves is None else record.curves.shape[2] - 1
        return self._append({"line": "record", "strategy": record.strategy, "seed": record.seed,
                             "task_names": record.task_names, "kind": record.kind, "steps": steps})

    def row(self, record: LifetimeRecord, after_task: int) -> int:
        """The row's scores, then (classification) its per-example correctness on a line of its own."""
        curves = None if record.curves is None else record.curves[after_task]
        offset = self._append({"line": "row", "strategy": record.strategy, "seed": record.seed,
                               "after_task": after_task, "scores": record.scores[after_task],
                               "losses": record.losses[after_task], "curves": curves,
                               "cost": record.eval_cost.get(after_task, {})})
        if record.correct is not None and record.correct.after_task == after_task:
            offset = self._append(record.correct.line(record.strategy, record.seed))
        return offset

    def task(self, record: LifetimeRecord, task_id: int) -> int:
        curve = {"within_task": record.within_task[task_id]} if task_id in record.within_task else {}
        return self._append({"line": "task", "strategy": record.strategy, "seed": record.seed, "task": task_id,
                             "train_seconds": record.train_seconds[task_id],
                             "peak_memory_mb": record.peak_memory_mb[task_id], "stats": record.train_stats[task_id],
                             "cost": record.task_cost[task_id] if task_id < len(record.task_cost) else {}, **curve})

    def _append(self, line: dict) -> int:
        """Append one line in one write; return the log's size after it (a checkpoint's pointer)."""
        data = (json.dumps(line, default=_plain) + "\n").encode()
        with self.path.open("ab") as handle:
            handle.write(data)
            return handle.tell()

    def check_reaches(self, offset: int) -> None:
        size = self.size()
        if offset > size:
            raise RecordLogError(f"{self.path}: the checkpoints point {offset} bytes into this file, but it holds "
                                 f"only {size}; it was cut or replaced, so the run cannot be resumed")

    def truncate(self, offset: int) -> None:
        """Cut the log back to `offset` bytes: what was appended after a checkpoint is redone on resume."""
        self.check_reaches(offset)
        if offset < self.size():
            os.truncate(self.path, offset)

    def read(self, up_to: int | None = None) -> list[LifetimeRecord]:
        """Every lifetime in the log (its first `up_to` bytes), in the order they started; cells never
        written are NaN."""
        records: dict[tuple[str, int], LifetimeRecord] = {}
        for number, raw in enumerate(self.lines(up_to), start=1):
            try:
                line = json.loads(raw)
                _apply(records, line)
            except (ValueError, KeyError, IndexError, TypeError) as error:
                raise RecordLogError(f"{self.path}, line {number}: cannot be read ({type(error).__name__}: "
                                     f"{error}); the file was edited or damaged") from None
        return list(records.values())

    def lines(self, up_to: int | None = None):
        """The complete lines of the first `up_to` bytes, one at a time (a T = 1,000 log is tens of MB);
        a last line without its newline (torn by a crash) is left out."""
        if not self.path.exists():
            return
        left = self.size() if up_to is None else up_to
        with self.path.open("rb") as handle:
            for raw in handle:
                if len(raw) > left or not raw.endswith(b"\n"):
                    return
                left -= len(raw)
                yield raw


def _apply(records: dict[tuple[str, int], LifetimeRecord], line: dict) -> None:
    key = (line["strategy"], line["seed"])
    if line["line"] == "record":
        record = LifetimeRecord(line["strategy"], line["seed"], list(line["task_names"]), line["kind"])
        if line["steps"] is not None:
            record.curves = np.full((record.n_tasks + 1, record.n_tasks, line["steps"] + 1), np.nan)
        records[key] = record
        return
    record = records[key]
    if line["line"] == "row":
        row = line["after_task"]
        record.scores[row], record.losses[row] = line["scores"], line["losses"]
        if line["curves"] is not None:
            record.curves[row] = line["curves"]
        if line.get("cost"):
            record.eval_cost[row] = line["cost"]
    elif line["line"] == "task":
        task = line["task"]
        if task != record.completed:
            raise ValueError(f"task {task} of {key} logged after task {record.completed - 1}")
        record.train_seconds[task], record.peak_memory_mb[task] = line["train_seconds"], line["peak_memory_mb"]
        record.train_stats.append(line["stats"])
        record.task_cost.append(line.get("cost", {}))
        if "within_task" in line:
            record.within_task[task] = line["within_task"]
        record.completed = task + 1
    elif line["line"] != "correct":  # correctness lines are read by evaluation/flips.py
        raise ValueError(f"unknown line kind {line['line']!r}")


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the record log")
