"""Efficiency metrics: what the accuracy cost, from the counted cost of each task (lifelong.cost).

`Costs` gathers a record's per-task figures as arrays (NaN where a task was not counted). The
metrics are registered like the others (`@metric`, input `cost`) and so appear in metrics.json,
the report's glossary and `lifelong compare`. F_i = counted training FLOPs of task i (forward and
backward, FlopCounterMode's convention: a multiply-add is 2), E_i = its training energy in joules
(measured, or estimated where the run's energy_method says so), n_i = its training examples
drawn by the training steps, r_j = the independent learner's score on task j.

Díaz-Rodríguez, Lomonaco, Filliat, Maltoni, "Don't forget, there is more than forgetting: new
metrics for Continual Learning", NeurIPS 2018 CL workshop (arXiv 1810.13166): MS, SSS and CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifelong.evaluation import metrics  # noqa: F401  (registered first: listings start with accuracy)
from lifelong.evaluation.registry import defined_mean, metric

NAN = float("nan")
EFFICIENCY = "Cost and efficiency"
REACH = 0.9  # the fraction of the independent learner's score a task must reach (sample efficiency)

TASK_FIGURES = ("train_flops", "pass_flops", "gradient_steps", "samples_seen", "train_examples",
                "stored_examples", "model_parameters", "energy_j")


@dataclass
class Costs:
    """Per-task cost figures of one lifetime, each an array of shape (T,); NaN where not counted."""

    train_flops: np.ndarray
    pass_flops: np.ndarray
    gradient_steps: np.ndarray
    samples_seen: np.ndarray
    train_examples: np.ndarray
    stored_examples: np.ndarray
    model_parameters: np.ndarray
    energy_j: np.ndarray

    @classmethod
    def of(cls, task_cost: list[dict], n_tasks: int) -> Costs | None:
        """From a record's `task_cost` (one dict per trained task); None when nothing was counted."""
        if not any(task_cost):
            return None
        columns = {name: np.full(n_tasks, NAN) for name in TASK_FIGURES}
        for task, figures in enumerate(task_cost):
            for name in TASK_FIGURES:
                value = figures.get(name)
                columns[name][task] = NAN if value is None else float(value)
        return cls(**columns)


def _final_acc(R) -> float:
    R = np.asarray(R, dtype=float)
    return defined_mean(R[-1])


def _whole(x: np.ndarray) -> float:
    """The lifetime's sum, NaN unless every task was counted."""
    return float(np.sum(x)) if x.size and not np.isnan(x).any() else NAN


def _per(acc: float, amount: float) -> float:
    """acc / amount, NaN where nothing was spent: a meter can read 0 over a short lifetime (NVML's
    energy counter is refreshed periodically, so a lifetime shorter than its refresh reads 0 J)."""
    return acc / amount if amount > 0 else NAN


@metric("train_tflops", group=EFFICIENCY, title="training compute", formula="Σ_i F_i / 10^12", better="lower",
        baseline="none", needs=("cost",), reduce=lambda terms: _whole(terms) / 1e12,
        convention="counted training FLOPs of the lifetime in TFLOP (the x axis of the accuracy-compute frontier)",
        cells="F_i of every task")
def train_tflops(cost: Costs) -> np.ndarray:
    return cost.train_flops


@metric("energy_kj", group=EFFICIENCY, title="training energy", formula="Σ_i E_i / 1000", better="lower",
        baseline="none", needs=("cost",), reduce=lambda terms: _whole(terms) / 1000,
        convention="training energy of the lifetime in kJ, measured or estimated as the run's energy_method "
                   "says; n/a where no backend was available",
        cells="E_i of every task")
def energy_kj(cost: Costs) -> np.ndarray:
    return cost.energy_j


@metric("acc_per_tflop", group=EFFICIENCY, title="accuracy per TFLOP", formula="ACC / (Σ_i F_i / 10^12)",
        better="higher", baseline="none", bounded=True, needs=("R", "cost"),
        convention="final accuracy ACC = mean_j R[T][j] per 10^12 counted training FLOPs of the lifetime "
                   "(evaluation FLOPs excluded: they depend on the evaluation schedule, not the strategy); n/a "
                   "where none were counted",
        cells="R[T][j] and F_i of every task")
def acc_per_tflop(R, cost: Costs) -> np.ndarray:
    return np.array([_per(_final_acc(R), _whole(cost.train_flops) / 1e12)])


@metric("acc_per_kj", group=EFFICIENCY, title="accuracy per kJ", formula="ACC / (Σ_i E_i / 1000)",
        better="higher", baseline="none", bounded=True, needs=("R", "cost"),
        convention="final accuracy per kilojoule of training energy (E_i: task i's, in J); measured (NVML, "
                   "RAPL) or estimated (CodeCarbon) as the run's energy_method column says; n/a where no backend "
                   "was available or the lifetime read 0 J (shorter than the meter's refresh)",
        cells="R[T][j] and E_i of every task")
def acc_per_kj(R, cost: Costs) -> np.ndarray:
    return np.array([_per(_final_acc(R), _whole(cost.energy_j) / 1000)])


def _reached(R, independent, within_task: dict[int, list]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task j: whether R[j-1][j] reaches REACH·r_j (before its training), the index of the first
    point of its within-task curve that reaches it (-1: none, or no curve), whether R[j][j] does."""
    R, r = np.asarray(R, dtype=float), np.asarray(independent, dtype=float)
    goal = REACH * r
    first = np.full(len(r), -1)
    for task, points in within_task.items():
        hits = np.flatnonzero(np.asarray(points, dtype=float).reshape(-1, 4)[:, 3] >= goal[task])
        first[task] = hits[0] if hits.size else -1
    return np.diagonal(R) >= goal, first, np.diagonal(R, offset=-1) >= goal


def _to_reach(R, independent, spent: np.ndarray, within_task: dict[int, list], column: int) -> np.ndarray:
    """Per task j: 0 when its score before its own training R[j-1][j] already reaches REACH·r_j; else
    the spending (curve `column`: 1 samples, 2 FLOPs) at the first point of its within-task curve that
    reaches it; else the task's whole spending when R[j][j] reaches it; NaN when it is not reached (or
    the cells were not evaluated)."""
    before, first, after = _reached(R, independent, within_task)
    out = np.where(after, spent, NAN)
    for task in np.flatnonzero(first >= 0):
        out[task] = within_task[task][first[task]][column]
    return np.where(before, 0.0, out)


@metric("flops_to_reach", group=EFFICIENCY, title=f"FLOPs to reach {REACH:.0%} of r_j",
        formula=f"mean_j [0 if R[j-1][j] ≥ {REACH}·r_j; else F_j up to the first curve point (or R[j][j]) "
                f"≥ {REACH}·r_j]", better="lower",
        baseline="r_j = independent learner, same model and budget", bounded=True,
        needs=("R", "independent", "cost", "within_task"),
        convention="L2M-style sample efficiency: with `evaluation.within_task_every` set, the counted training "
                   "FLOPs up to the first within-task score that reaches the level (probes every k steps: the "
                   "resolution); without it, the task's start and end only (F_j = all of task j's counted "
                   "training FLOPs); a task not reached by the end of its training has no term (see reach_rate)",
        cells="R[j-1][j], R[j][j] (and task j's within-task curve) with r_j and F_j")
def flops_to_reach(R, independent, cost: Costs, within_task) -> np.ndarray:
    return _to_reach(R, independent, cost.train_flops, within_task, column=2)


@metric("samples_to_reach", group=EFFICIENCY, title=f"samples to reach {REACH:.0%} of r_j",
        formula=f"mean_j [0 if R[j-1][j] ≥ {REACH}·r_j; else n_j up to the first curve point (or R[j][j]) "
                f"≥ {REACH}·r_j]", better="lower",
        baseline="r_j = independent learner, same model and budget", bounded=True,
        needs=("R", "independent", "cost", "within_task"),
        convention="as flops_to_reach with n_j = training examples of task j drawn by its training steps "
                   "(epochs x examples for minibatch SGD; support + query examples for episodes)",
        cells="R[j-1][j], R[j][j] (and task j's within-task curve) with r_j and n_j")
def samples_to_reach(R, independent, cost: Costs, within_task) -> np.ndarray:
    return _to_reach(R, independent, cost.samples_seen, within_task, column=1)


@metric("reach_rate", group=EFFICIENCY, title=f"tasks reaching {REACH:.0%} of r_j",
        formula=f"mean_j 1[R[j-1][j], a within-task score or R[j][j] ≥ {REACH}·r_j]", better="higher",
        baseline="r_j = independent learner, same model and budget", bounded=True,
        needs=("R", "independent", "within_task"),
        convention="the share of tasks that flops_to_reach and samples_to_reach average over",
        cells="R[j-1][j], R[j][j] with r_j")
def reach_rate(R, independent, within_task) -> np.ndarray:
    R, r = np.asarray(R, dtype=float), np.asarray(independent, dtype=float)
    before, first, after = _reached(R, independent, within_task)
    unknown = (np.isnan(np.diagonal(R)) & np.isnan(np.diagonal(R, offset=-1)) & (first < 0)) | np.isnan(r)
    return np.where(unknown, NAN, (before | after | (first >= 0)).astype(float))


def _capped(terms: np.ndarray) -> float:
    value = defined_mean(terms)
    return value if np.isnan(value) else min(1.0, value)


@metric("model_size_efficiency", group=EFFICIENCY, title="model size efficiency MS",
        formula="min(1, (1/T) Σ_i Mem(θ_1) / Mem(θ_i))", better="higher", baseline="the model after task 1",
        needs=("cost",), reduce=_capped,
        convention="Díaz-Rodríguez et al. 2018; Mem(θ_i) = parameters the strategy holds after task i "
                   "(Strategy.model_size); 1 = no growth, in (0, 1]",
        cells="Mem(θ_i) of every task")
def model_size_efficiency(cost: Costs) -> np.ndarray:
    return cost.model_parameters[0] / cost.model_parameters


@metric("sample_storage_efficiency", group=EFFICIENCY, title="sample storage efficiency SSS",
        formula="1 − min(1, (1/T) Σ_i Mem(M_i) / Mem(D))", better="higher", baseline="storing nothing",
        needs=("cost",), reduce=lambda terms: 1.0 - _capped(terms),
        convention="Díaz-Rodríguez et al. 2018; Mem(M_i) = examples stored after task i "
                   "(Strategy.stored_examples), Mem(D) = training examples of the whole stream; 1 = none kept",
        cells="Mem(M_i) and the examples of every task")
def sample_storage_efficiency(cost: Costs) -> np.ndarray:
    return cost.stored_examples / _whole(cost.train_examples)


@metric("computational_efficiency", group=EFFICIENCY, title="computational efficiency CE",
        formula="min(1, (1/T) Σ_i Ops↑↓(Tr_i)·ε / (1 + Ops(Tr_i)))", better="higher",
        baseline="one forward+backward pass of the model over each task", needs=("cost",), reduce=_capped,
        convention="Díaz-Rodríguez et al. 2018 with ε = 1; Ops(Tr_i) = F_i, the counted training FLOPs of task i; "
                   "Ops↑↓(Tr_i) = counted FLOPs of one forward and backward pass of the config's model over "
                   "task i's training examples; 1 = one epoch of plain fine-tuning or less",
        cells="F_i and Ops↑↓(Tr_i) of every task")
def computational_efficiency(cost: Costs) -> np.ndarray:
    return cost.pass_flops / (1 + cost.train_flops)


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """The strategies on the accuracy-compute frontier: `points` maps a label to (compute, accuracy);
    a point is on it when no other has compute <= and accuracy >= with one of them strictly. A point
    with a NaN coordinate is never on it."""
    valid = {k: p for k, p in points.items() if not np.isnan(p).any()}
    return {k for k, (c, a) in valid.items()
            if not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in valid.values())}
