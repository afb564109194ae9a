"""Read a run folder back, and only the folder: everything a report or a comparison shows comes from
here. Missing or older files are noted in `missing`, and whatever can still be shown is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lifelong.specfiles import parse_yaml
from lifelong.evaluation.analysis import analyse, reference_scores
from lifelong.evaluation.flips import attach_flips
from lifelong.evaluation.record import LifetimeRecord
from lifelong.l2m.export import attach as attach_l2m
from lifelong.record_log import LOG_NAME


@dataclass
class Lifetime:
    """How far one (strategy, seed) got: tasks trained and evaluated, of how many, and its last error."""

    strategy: str
    seed: int
    completed: int
    n_tasks: int
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.completed >= self.n_tasks

    def state(self) -> str:
        if self.finished:
            return "finished"
        where = "not started" if self.completed == 0 else f"stopped after task {self.completed} of {self.n_tasks}"
        return where + (f" (error: {self.error})" if self.error else "")


RECORD_READ_ROWS = 50_000  # rows of record.csv parsed at once
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
    lifetimes: list[Lifetime] = field(default_factory=list)  # every (strategy, seed) the config asks for

    @property
    def unfinished(self) -> list[Lifetime]:
        return [life for life in self.lifetimes if not life.finished]

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
    run.config = _read(run, "config.yaml", lambda file: parse_yaml(file.read_text(), str(file))[0],
                       "the config section is left out") or {}
    run.environment = _read(run, "environment.json", _json, "the environment section is left out")
    run.references = _read(run, "references.json", _json,
                           "run without references (or by an older version): negative transfer and "
                           "intransigence are not shown")
    if (path / "error.txt").is_file():
        last = (path / "error.txt").read_text().strip().splitlines()[-1:] or ["?"]
        run.notes.append(f"the run stopped on an error ({last[0]}); rows after it are empty and "
                           "`lifelong resume` can finish it")
    run.records = _records(run)
    run.lifetimes = _lifetimes(run)
    if run.unfinished:
        run.notes.append("the run is unfinished: " + "; ".join(
            f"{life.strategy} seed {life.seed} {life.state()}" for life in run.unfinished))
    if run.records:
        run.timings = _read(run, "timings.csv", _csv,
                            "training times are not shown")
        _attach_timings(run.records, run.timings)
        _attach_curves(run)
        _attach_within_task(run)
        _attach_flips_and_l2m(run)
        run.metrics = analyse(run.records, reference_scores(run.references), run.tolerance)
        if not (path / "metrics.json").is_file():
            run.notes.append("metrics.json is missing: metrics recomputed from record.csv")
    else:
        stored = _read(run, "metrics.json", _json, "no metrics can be shown")
        if stored is not None:
            run.metrics = stored
            run.notes.append(f"metrics come from metrics.json (version {stored.get('version', 1)}), not "
                               "recomputed; figures that need the record are left out")
    return run


def _read(run: RunData, name: str, parse, consequence: str):
    file = run.path / name
    try:
        return parse(file)
    except FileNotFoundError:
        run.notes.append(f"{name} is missing: {consequence}")
    except (ValueError, yaml.YAMLError) as error:  # json, yaml and pandas parse errors
        run.notes.append(f"{name} cannot be read ({type(error).__name__}: {error}): {consequence}")
    return None


def _json(file: Path):
    return json.loads(file.read_text())


def _csv(file: Path) -> pd.DataFrame:
    return pd.read_csv(file)


class _Lacking(Exception):
    """record.csv lacks columns (a file of an older version)."""


def _record_csv(file: Path) -> list[LifetimeRecord]:
    """The records in record.csv, read a block of rows at a time into score matrices: a T = 1,000
    lifetime is a million rows, which as one table would take several times the matrices' memory."""
    parts: dict[tuple, dict] = {}
    for chunk in pd.read_csv(file, chunksize=RECORD_READ_ROWS, dtype={"eval_task_name": str}):
        lacking = RECORD_COLUMNS - set(chunk.columns)
        if lacking:
            raise _Lacking(f"record.csv lacks the columns {sorted(lacking)} (older version?): it is not used")
        for (strategy, seed), rows in chunk.groupby(["strategy", "seed"], sort=False):
            part = parts.setdefault((str(strategy), int(seed)), {"matrices": np.full((2, 0, 0), np.nan),
                                                                  "names": {}, "score_name": rows["score_name"].iloc[0]})
            after, evaluated = rows["after_task"].to_numpy(), rows["eval_task"].to_numpy()
            part["matrices"] = _grown(part["matrices"], after.max() + 1, evaluated.max() + 1)
            part["matrices"][:, after, evaluated] = rows["score"].to_numpy(), rows["loss"].to_numpy()
            first = rows[after == 0]
            part["names"].update(zip(first["eval_task"], first["eval_task_name"]))
    return [_record_of(key, part) for key, part in parts.items()]


def _grown(matrices: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """(score, loss) matrices at least rows x columns, new cells NaN (a record's size is known only at its end)."""
    if rows <= matrices.shape[1] and columns <= matrices.shape[2]:
        return matrices
    grown = np.full((2, max(rows, matrices.shape[1]), max(columns, matrices.shape[2])), np.nan)
    grown[:, :matrices.shape[1], :matrices.shape[2]] = matrices
    return grown


def _record_of(key: tuple[str, int], part: dict) -> LifetimeRecord:
    n = part["matrices"].shape[2]
    scores, losses = _grown(part["matrices"], n + 1, n)
    return LifetimeRecord(key[0], key[1], [part["names"][j] for j in range(n)],
                          "regression" if part["score_name"] == "neg_mse" else "classification", scores, losses)


def _records(run: RunData) -> list[LifetimeRecord]:
    try:
        return _read(run, "record.csv", _record_csv, "no score matrices, figures or recomputed metrics") or []
    except _Lacking as lacking:
        run.notes.append(str(lacking))
        return []


def _lifetimes(run: RunData) -> list[Lifetime]:
    """Progress of every (strategy, seed) of the config (and any other the record holds), from the
    events the run appended (run_start, task_end, error); from the record's filled rows without them."""
    n_tasks = run.records[0].n_tasks if run.records else (run.stream.get("n_tasks") or 0)
    lives: dict[tuple[str, int], Lifetime] = {}
    for label, seed in _planned(run.config):
        lives[(label, seed)] = Lifetime(label, seed, 0, n_tasks)
    events = _read_events(run)
    if events is None:
        for record in run.records:
            filled = np.flatnonzero(~np.all(np.isnan(record.scores[1:]), axis=1))
            completed = int(filled[-1]) + 1 if filled.size else 0
            lives[(record.strategy, record.seed)] = Lifetime(record.strategy, record.seed, completed, n_tasks)
        return list(lives.values())
    for event in events:
        key = (str(event.get("strategy")), int(event.get("seed", -1)))
        life = lives.setdefault(key, Lifetime(*key, 0, n_tasks))
        if event.get("event") == "run_start":
            life.error = None
        elif event.get("event") == "task_end":
            life.completed = max(life.completed, int(event["task"]) + 1)
        elif event.get("event") == "error":
            life.error = str(event.get("error"))
    for record in run.records:  # a lifetime in the record but absent from the events
        lives.setdefault((record.strategy, record.seed), Lifetime(record.strategy, record.seed, 0, n_tasks))
    return list(lives.values())


def _planned(config: dict) -> list[tuple[str, int]]:
    """(label, seed) of every lifetime config.yaml asks for, in the order a run plays them."""
    strategies = config.get("strategies") if isinstance(config.get("strategies"), list) else []
    labels = [str(s.get("label") or s.get("name")) for s in strategies if isinstance(s, dict)]
    seeds = config.get("seeds") if isinstance(config.get("seeds"), list) else []
    return [(label, int(seed)) for seed in seeds for label in labels]


def _read_events(run: RunData) -> list[dict] | None:
    """events.jsonl, skipping a torn last line (a run killed mid-append); None when absent."""
    file = run.path / "events.jsonl"
    if not file.is_file():
        if run.records:
            run.notes.append("events.jsonl is missing: how far each lifetime got is read off the record's rows")
        return None
    events = []
    with file.open(encoding="utf-8", errors="replace") as lines:  # one line at a time: long runs log a lot
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                event.pop("scores", None)  # a task_end's score row: the record has it; keep only progress
                events.append(event)
    return events


def _attach_timings(records: list[LifetimeRecord], timings: pd.DataFrame | None) -> None:
    if timings is None or not {"strategy", "seed", "task", "train_seconds"} <= set(timings.columns):
        return
    for record in records:
        rows = timings[(timings["strategy"] == record.strategy) & (timings["seed"] == record.seed)]
        record.train_seconds[rows["task"].to_numpy()] = rows["train_seconds"].to_numpy()
        _attach_costs(record, rows)


def _attach_costs(record: LifetimeRecord, rows: pd.DataFrame) -> None:
    """The cost columns of timings.csv (lifelong.cost.meter) back into the record: the training's into
    `task_cost`, the evaluation's after each task into `eval_cost`; nothing when the run counted none."""
    if "train_flops" not in rows.columns:
        return
    figures = [{k: v for k, v in row.items() if k not in _TIMING_COLUMNS and not _missing(v)}
               for row in rows.sort_values("task").to_dict("records")]
    record.task_cost = [{k: v for k, v in f.items() if not k.startswith("eval_")} for f in figures]
    record.eval_cost = {task + 1: {k: v for k, v in f.items() if k.startswith("eval_")}
                        for task, f in enumerate(figures)}


_TIMING_COLUMNS = ("strategy", "seed", "task", "task_name", "train_seconds", "peak_memory_mb", "train_loss")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _attach_flips_and_l2m(run: RunData) -> None:
    """Prediction flips from the record log's correctness lines and L2M metrics from l2m/metrics.json,
    when the folder has them; a damaged one is a note, and the rest of the report is still written."""
    for attach, source, what in ((attach_flips, run.path / LOG_NAME, "prediction flips"),
                                 (attach_l2m, run.path, "L2M metrics")):
        try:
            attach(run.records, source)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            run.notes.append(f"{what} cannot be read ({type(error).__name__}: {error}): they are not shown")


def _attach_within_task(run: RunData) -> None:
    """within_task.csv (learning curves during training) back into the records, when the run has one."""
    if not (run.path / "within_task.csv").is_file():
        return
    frame = _read(run, "within_task.csv", _csv, "within-task curves are not used: flops_to_reach and "
                                                "samples_to_reach fall back to each task's start and end")
    if frame is None:
        return
    for record in run.records:
        rows = frame[(frame["strategy"] == record.strategy) & (frame["seed"] == record.seed)]
        for task, points in rows.groupby("task"):
            record.within_task[int(task)] = points[["step", "samples", "flops", "score"]].to_numpy().tolist()


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
