"""The run folder: where a run's files live and how they are written (atomically: temp file + rename).

Layout: config.yaml, environment.json, record.csv (+ record.parquet with pyarrow), timings.csv,
curves.csv (few-shot adaptation curves),
metrics.json, references.json, report.html, report.md, events.jsonl, checkpoints/<label>-seed<N>.pt, error.txt on failure.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

from lifelong.evaluation.record import LifetimeRecord


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, then rename over `path`: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

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

    def write_records(self, records: list[LifetimeRecord]) -> None:
        """The record in long form (CSV, and parquet when pyarrow is there) plus per-task timings."""
        frame = pd.concat([r.to_frame() for r in records], ignore_index=True)
        atomic_write(self.file("record.csv"), frame.to_csv(index=False))
        timings = pd.concat([_timings(r) for r in records], ignore_index=True)
        atomic_write(self.file("timings.csv"), timings.to_csv(index=False))
        curves = [r.curves_frame() for r in records if r.curves is not None]
        if curves:
            atomic_write(self.file("curves.csv"), pd.concat(curves, ignore_index=True).to_csv(index=False))
        try:
            import pyarrow  # noqa: F401  (optional: parquet only when installed)
        except ImportError:
            return
        atomic_write(self.file("record.parquet"), frame.to_parquet(index=False))

    def checkpoint_path(self, label: str, seed: int) -> Path:
        return self.file(f"checkpoints/{label}-seed{seed}.pt")

    def save_checkpoint(self, label: str, seed: int, state: dict) -> None:
        path = self.checkpoint_path(label, seed)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, label: str, seed: int) -> dict | None:
        path = self.checkpoint_path(label, seed)
        return torch.load(path, weights_only=True) if path.is_file() else None


def _timings(record: LifetimeRecord) -> pd.DataFrame:
    return pd.DataFrame({
        "strategy": record.strategy, "seed": record.seed, "task": range(record.n_tasks),
        "task_name": record.task_names, "train_seconds": record.train_seconds,
        "peak_memory_mb": record.peak_memory_mb,
        "train_loss": [s.get("train_loss") for s in record.train_stats] + [None] * (record.n_tasks - len(record.train_stats)),
    })


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
