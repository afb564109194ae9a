"""Read a run folder back, and only the folder: everything a report or a comparison shows comes from
here. Missing or older files are noted in `missing`, and whatever can still be shown is loaded."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lifelong.evaluation.analysis import analyse, reference_scores
from lifelong.evaluation.record import LifetimeRecord

RECORD_COLUMNS = {"strategy", "seed", "after_task", "eval_task", "eval_task_name", "score", "loss", "score_name"}


@dataclass
class RunData:
    path: Path
    config: dict = field(default_factory=dict)  # config.yaml as written, not re-validated
    environment: dict | None = None
    records: list[LifetimeRecord] = field(default_factory=list)
    timings: pd.DataFrame | None = None
    references: dict | None = None
    metrics: dict | None = None
    notes: list[str] = field(default_factory=list)  # one sentence per missing, unreadable or unfinished part

    @property
    def name(self) -> str:
        return self.config.get("name") or self.path.name

    @property
    def stream(self) -> dict:
        stream = self.config.get("stream")
        return stream if isinstance(stream, dict) else {"name": str(stream or "unknown stream")}

    @property
    def tolerance(self) -> float:
        return float((self.config.get("analysis") or {}).get("tolerance", 0.02))


def load_run(path: str | Path) -> RunData:
    """Load what is there; raise only when `path` is not a folder at all."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder")
    run = RunData(path)
    run.config = _read(run, "config.yaml", yaml.safe_load, "the config section is left out") or {}
    run.environment = _read(run, "environment.json", json.loads, "the environment section is left out")
    run.references = _read(run, "references.json", json.loads,
                           "run without references (or by an older version): negative transfer and "
                           "intransigence are not shown")
    if (path / "error.txt").is_file():
        last = (path / "error.txt").read_text().strip().splitlines()[-1:] or ["?"]
        run.notes.append(f"the run stopped on an error ({last[0]}); rows after it are empty and "
                           "`lifelong resume` can finish it")
    run.records = _records(run)
    if run.records:
        run.timings = _read(run, "timings.csv", _csv,
                            "training times are not shown")
        _attach_timings(run.records, run.timings)
        _attach_curves(run)
        run.metrics = analyse(run.records, reference_scores(run.references), run.tolerance)
        if not (path / "metrics.json").is_file():
            run.notes.append("metrics.json is missing: metrics recomputed from record.csv")
    else:
        stored = _read(run, "metrics.json", json.loads, "no metrics can be shown")
        if stored is not None:
            run.metrics = stored
            run.notes.append(f"metrics come from metrics.json (version {stored.get('version', 1)}), not "
                               "recomputed; figures that need the record are left out")
    return run


def _read(run: RunData, name: str, parse, consequence: str):
    file = run.path / name
    try:
        return parse(file.read_text())
    except FileNotFoundError:
        run.notes.append(f"{name} is missing: {consequence}")
    except (ValueError, yaml.YAMLError) as error:  # json, yaml and pandas parse errors
        run.notes.append(f"{name} cannot be read ({type(error).__name__}: {error}): {consequence}")
    return None


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def _records(run: RunData) -> list[LifetimeRecord]:
    frame = _read(run, "record.csv", _csv,
                  "no score matrices, figures or recomputed metrics")
    if frame is None:
        return []
    lacking = RECORD_COLUMNS - set(frame.columns)
    if lacking:
        run.notes.append(f"record.csv lacks the columns {sorted(lacking)} (older version?): it is not used")
        return []
    groups = frame.groupby(["strategy", "seed"], sort=False)
    return [LifetimeRecord.from_frame(rows, "regression" if rows["score_name"].iloc[0] == "neg_mse"
                                      else "classification") for _, rows in groups]


def _attach_timings(records: list[LifetimeRecord], timings: pd.DataFrame | None) -> None:
    if timings is None or not {"strategy", "seed", "task", "train_seconds"} <= set(timings.columns):
        return
    for record in records:
        rows = timings[(timings["strategy"] == record.strategy) & (timings["seed"] == record.seed)]
        record.train_seconds[rows["task"].to_numpy()] = rows["train_seconds"].to_numpy()


def _attach_curves(run: RunData) -> None:
    few_shot = (run.config.get("evaluation") or {}).get("mode") == "few-shot"
    if not few_shot and not (run.path / "curves.csv").is_file():
        return
    frame = _read(run, "curves.csv", _csv, "few-shot adaptation curves and their metrics are not shown")
    if frame is None:
        return
    for record in run.records:
        rows = frame[(frame["strategy"] == record.strategy) & (frame["seed"] == record.seed)]
        if rows.empty:
            continue
        steps = int(rows["step"].max()) + 1
        curves = np.full((record.n_tasks + 1, record.n_tasks, steps), np.nan)
        curves[rows["after_task"], rows["eval_task"], rows["step"]] = rows["score"]
        record.curves = curves
