"""One place per metric: `@metric(...)` puts a metric's function, its glossary entry (formula, sign,
convention) and its report group together. `metrics.json`, the report, its glossary and `lifelong
compare` all read `METRICS`; nothing else lists metrics.

A registered function returns the metric's *terms* (one per task, or per pair of tasks), NaN where
a cell it needs was not evaluated (evaluation schedules leave cells NaN on purpose). Calling the
registered metric reduces the defined terms (their mean, by default); `evaluate` also says how many
terms it used and, when the value is NaN, why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import numpy as np

INPUTS = ("R", "independent", "joint", "curves", "flips", "l2m", "cost", "within_task")  # what a metric's function may take, by name


def defined_mean(x) -> float:
    """Mean of the non-NaN values; NaN (without numpy's warning) when there are none."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


class MetricValue(NamedTuple):
    value: float
    used: int  # terms computed from evaluated cells
    of: int  # terms the definition has at this T
    reason: str | None  # why the value is NaN; None when it is defined

    def coverage(self) -> dict:
        return {"used": self.used, "of": self.of, "reason": self.reason}


@dataclass(frozen=True)
class Metric:
    key: str
    terms: Callable[..., np.ndarray]
    title: str
    formula: str
    better: Literal["higher", "lower"]
    baseline: str
    convention: str
    group: str
    cells: str  # the cells one term reads, for "none of the cells it needs were evaluated"
    needs: tuple[str, ...] = ("R",)
    reduce: Callable[[np.ndarray], float] = defined_mean
    bounded: bool = False  # needs a score in [0, 1]: NaN for regression
    per_task: Callable[..., np.ndarray] | None = None  # one value per task, shown in the per-task figures
    per_task_title: str = ""

    def __call__(self, *inputs) -> float:
        return self.reduce(np.asarray(self.terms(*inputs), dtype=float))

    def evaluate(self, inputs: dict, bounded_score: bool = True) -> MetricValue:
        """Value, terms used and the reason when it is NaN, from the named `inputs` (see INPUTS)."""
        terms = np.atleast_1d(np.asarray(self.terms(*(inputs[name] for name in self.needs)), dtype=float))
        used, of = int(np.sum(~np.isnan(terms))), int(terms.size)
        if self.bounded and not bounded_score:
            return MetricValue(math.nan, 0, of, "needs a score in [0, 1]; this run's score is not bounded")
        value = self.reduce(terms)
        if not math.isnan(value):
            return MetricValue(value, used, of, None)
        if of == 0:
            reason = f"undefined with {_n_tasks(inputs)} task(s): no term {self.cells} exists"
        else:
            reason = f"none of the cells it needs ({self.cells}) were evaluated"
        return MetricValue(value, used, of, reason)

    def per_task_values(self, inputs: dict) -> np.ndarray:
        return np.asarray(self.per_task(*(inputs[name] for name in self.needs)), dtype=float)


def _n_tasks(inputs: dict) -> int:
    return np.shape(inputs["R"] if inputs.get("R") is not None else inputs["curves"])[1]


METRICS: dict[str, Metric] = {}


def metric(key: str, *, group: str, **info) -> Callable[[Callable], Metric]:
    """Register the decorated terms function as metric `key` with its glossary fields (see Metric)."""
    def register(terms: Callable) -> Metric:
        if key in METRICS:
            raise ValueError(f"metric {key!r} is registered twice")
        unknown = set(info.get("needs", ())) - set(INPUTS)
        if unknown:
            raise ValueError(f"metric {key!r} needs unknown inputs {sorted(unknown)}; known: {INPUTS}")
        METRICS[key] = registered = Metric(key, terms, group=group, **info)
        return registered
    return register


def groups() -> dict[str, tuple[str, ...]]:
    """Report groups in registration order, each with its metrics in registration order."""
    out: dict[str, tuple[str, ...]] = {}
    for key, entry in METRICS.items():
        out[entry.group] = (*out.get(entry.group, ()), key)
    return out
