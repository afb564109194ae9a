"""L2M's lifetime metrics in the metric registry, so metrics.json, the report's tables and glossary and
`lifelong compare` show them like the others. Each reads one lifetime's L2M result (`record.l2m`, the
JSON `compute.L2MResult.to_json` writes) and returns its terms: one per task, or per ordered task pair
for transfer; the registered value is their mean, which is l2metrics' lifetime value. Values are on
L2M's normalised scale (each task's range mapped to 1..101), not on the score's."""

from __future__ import annotations

import numpy as np

from lifelong.evaluation import flips as _flips  # noqa: F401  (the earlier groups register, and show, first)
from lifelong.evaluation.registry import metric

L2M = "L2M (DARPA Lifelong Learning Machines)"
_SOURCE = "New et al. 2022 (arXiv:2201.08278), as l2metrics 3.1.0 computes it with its default settings"
_SCALE = "on task-normalised scores (each task's range → 1..101, flat-smoothed training blocks)"


def _per_task(result: dict, key: str) -> np.ndarray:
    return np.array([values[key] for values in result["per_task"].values() if key in values], dtype=float)


def _pairs(result: dict, key: str) -> np.ndarray:
    """The first value of each ordered (trained, evaluated) task pair, as l2metrics aggregates them."""
    return np.array([v[0] for pairs in result["transfer"][key].values() for v in pairs.values()], dtype=float)


@metric("l2m_pm", group=L2M, title="performance maintenance (MRLEP)",
        formula="mean_tasks mean_tests (tp(test) − tp(most recent test after training))", better="higher",
        baseline="the task's most recent evaluation right after it was trained",
        convention=f"{_SOURCE}; {_SCALE}; < 0 = forgetting", cells="a task tested again after its post-training test",
        needs=("l2m",))
def performance_maintenance(result) -> np.ndarray:
    return _per_task(result, "perf_maintenance_mrlep")


def _transfer(key: str, direction: str, form: str, formula: str):
    when = "before b is trained" if direction == "forward" else "after b was first trained"
    return metric(f"l2m_{direction[0]}t_{form}", group=L2M, title=f"{direction} transfer ({form})", formula=formula,
                  better="higher", baseline="task b's test just before task a's training block",
                  convention=f"{_SOURCE}; per ordered pair (a trained, b evaluated) {when}, the first such "
                             f"pair value, averaged over pairs; " + ("> 1 = helped" if form == "ratio" else
                                                                    "> 0 = helped, in [−1, 1]"),
                  cells="tests of b just before and after a training block of a", needs=("l2m",))(
        lambda result: _pairs(result, key))


forward_transfer_ratio = _transfer("forward_transfer_ratio", "forward", "ratio", "mean_{a,b} tp2(b) / tp1(b)")
backward_transfer_ratio = _transfer("backward_transfer_ratio", "backward", "ratio", "mean_{a,b} tp2(b) / tp1(b)")
forward_transfer_contrast = _transfer("forward_transfer_contrast", "forward", "contrast",
                                      "mean_{a,b} (tp2 − tp1) / (tp1 + tp2)")
backward_transfer_contrast = _transfer("backward_transfer_contrast", "backward", "contrast",
                                       "mean_{a,b} (tp2 − tp1) / (tp1 + tp2)")


@metric("l2m_rp", group=L2M, title="performance relative to the single-task expert",
        formula="mean_tasks Σ_{e≤n} train(e) / Σ_{e≤n} expert(e), n = common length", better="higher",
        baseline="single-task expert = the independent learner (same model and budget, task alone)",
        convention=f"{_SOURCE}; {_SCALE}; 1 = as good as the expert", cells="a trained task with its expert's log",
        needs=("l2m",))
def relative_performance(result) -> np.ndarray:
    return _per_task(result, "ste_rel_perf")


@metric("l2m_se", group=L2M, title="sample efficiency",
        formula="mean_tasks (sat / sat_expert) · (exp_to_sat_expert / exp_to_sat)", better="higher",
        baseline="the single-task expert's learning curve",
        convention=f"{_SOURCE}; saturation = max of the smoothed training curve; 0 when the curve falls or stays "
                   "below 20% of the expert's; NaN when a curve peaks at its first experience. Lifelong logs a "
                   "training block's curve with `evaluation.within_task_every` (the expert's from the run's "
                   "`independent` strategy), else one experience per block, and the metric is NaN",
        cells="training curves of two or more experiences, with the expert's", needs=("l2m",))
def sample_efficiency(result) -> np.ndarray:
    return _per_task(result, "sample_efficiency")


@metric("l2m_pr", group=L2M, title="performance recovery", formula="mean_tasks −TheilSen slope(recovery times)",
        better="higher", baseline="the task's terminal performance in its previous training block",
        convention=f"{_SOURCE}; recovery time = experiences of a later training block until that level is "
                   "reached again; NaN unless tasks recur (three or more training blocks of one task)",
        cells="recovery times of a task trained in three or more blocks", needs=("l2m",))
def performance_recovery(result) -> np.ndarray:
    return _per_task(result, "perf_recovery")
