"""Prediction flips between consecutive models (Yan et al. 2021, "Positive-Congruent Training:
Towards Regression-Free Model Updates", CVPR): an example the previous model classified correctly
and the new one gets wrong is a *negative flip* — forgetting at the level of single examples, which
an unchanged accuracy can hide (as many positive flips make up for it).

For each evaluated row i (the model after task i) and each task j scored in row i and in the
previous evaluated row p (the model before it), from the per-example correctness the record log
keeps (evaluation/correctness.py):

    NFR[i][j] = #{correct at p, wrong at i} / n_j          negative flip rate
    NFI[i][j] = #{correct at p, wrong at i} / #{wrong at i}  negative flip impact (NaN: no error at i)
    PFR[i][j] = #{wrong at p, correct at i} / n_j          positive flip rate

`flips[i, j]` holds the counts [negative flips, positive flips, errors at i, n_j] (NaN where task j
was not scored in both rows, and in row 0, which has no model before it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lifelong.evaluation import metrics as _core  # noqa: F401  (the core groups register, and show, first)
from lifelong.evaluation.correctness import RowCorrectness
from lifelong.evaluation.registry import metric

FLIPS = "Prediction flips"
_WANTED = (b'{"line": "record"', b'{"line": "correct"')  # the lines read_flips needs, as RecordLog writes them
NEGATIVE, POSITIVE, ERRORS, N = range(4)


def flip_counts(before, after) -> np.ndarray:
    """[negative flips, positive flips, errors after, n] of two bool vectors of per-example correctness."""
    before, after = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if before.shape != after.shape:
        raise ValueError(f"correctness vectors differ in length: {before.shape} and {after.shape}")
    return np.array([np.sum(before & ~after), np.sum(~before & after), np.sum(~after), after.size], dtype=float)


class FlipCounter:
    """The counts (T+1, T, 4) of one lifetime, filled a row at a time: only the previous row's
    correctness is held (a T = 1,000 lifetime has a thousand rows of 100,000 examples). Counts are
    float32 (exact up to 2^24 examples per task; NaN where not scored): 16 MB at T = 1,000, not 32."""

    def __init__(self, n_tasks: int):
        self.counts = np.full((n_tasks + 1, n_tasks, 4), np.nan, dtype=np.float32)
        self.rows = 0
        self._previous: dict[int, np.ndarray] = {}

    def add(self, row: RowCorrectness) -> None:
        current = row.per_task()
        for task, correct in current.items():
            if task in self._previous:
                self.counts[row.after_task, task] = flip_counts(self._previous[task], correct)
        self._previous = current
        self.rows += 1


def flip_matrix(rows, n_tasks: int) -> np.ndarray:
    """Counts (T+1, T, 4) of each evaluated row against the previous evaluated row (see module doc)."""
    counter = FlipCounter(n_tasks)
    for row in rows:
        counter.add(row)
    return counter.counts


def read_flips(log_path: str | Path) -> dict[tuple[str, int], np.ndarray]:
    """(strategy, seed) -> flip counts, from the record log's correctness lines, one line at a time
    (only the previous row of each lifetime is held). Lifetimes without such lines are absent."""
    from lifelong.record_log import RecordLog  # the log module imports the record; keep this module light

    log = RecordLog(Path(log_path))
    counters: dict[tuple[str, int], FlipCounter] = {}
    for raw in log.lines():
        if not raw.startswith(_WANTED):
            continue  # a row's scores: not parsed (the rows of a long lifetime are most of the log)
        line = json.loads(raw)
        key = (line["strategy"], line["seed"])
        if line["line"] == "record":
            counters[key] = FlipCounter(len(line["task_names"]))  # a lifetime (re)starts
        elif line["line"] == "correct":
            counters[key].add(RowCorrectness.from_line(line))
    return {key: counter.counts for key, counter in counters.items() if counter.rows}


def _rate(flips, numerator: int, denominator: int) -> np.ndarray:
    counts = np.asarray(flips)[1:]  # row 0 has no model before it; no float64 copy of all four counts
    top, bottom = counts[..., numerator].astype(float), counts[..., denominator].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = top / bottom
    return np.where(bottom > 0, rate, np.nan).ravel()


@metric("nfr", group=FLIPS, title="negative flip rate", formula="mean_{i,j} #{right before, wrong after} / n_j",
        better="lower", baseline="the previous evaluated model, example by example",
        convention="Yan et al. 2021 (positive-congruent training), per task and model update, averaged over "
                   "every (update, task) scored before and after; includes tasks not yet trained",
        cells="per-example correctness of task j in rows i and the previous evaluated row", needs=("flips",))
def negative_flip_rate(flips) -> np.ndarray:
    return _rate(flips, NEGATIVE, N)


@metric("nfi", group=FLIPS, title="negative flip impact",
        formula="mean_{i,j} #{right before, wrong after} / #{wrong after}", better="lower",
        baseline="the new model's errors",
        convention="Yan et al. 2021: NFR / error rate of the new model, per (update, task); a term is NaN "
                   "(skipped) when the new model makes no error on the task",
        cells="per-example correctness with at least one error after the update", needs=("flips",))
def negative_flip_impact(flips) -> np.ndarray:
    return _rate(flips, NEGATIVE, ERRORS)


@metric("pfr", group=FLIPS, title="positive flip rate", formula="mean_{i,j} #{wrong before, right after} / n_j",
        better="higher", baseline="the previous evaluated model, example by example",
        convention="the mirror of NFR; PFR − NFR = the accuracy change of the update",
        cells="per-example correctness of task j in rows i and the previous evaluated row", needs=("flips",))
def positive_flip_rate(flips) -> np.ndarray:
    return _rate(flips, POSITIVE, N)


def attach_flips(records, log_path: str | Path) -> None:
    """Give each classification record its flip counts (record.flips) from the record log, if it has any."""
    found = read_flips(log_path) if Path(log_path).is_file() else {}
    for record in records:
        record.flips = found.get((record.strategy, record.seed))
