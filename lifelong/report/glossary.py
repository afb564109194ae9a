"""What every metric in metrics.json means, read from the metric registry (formula, which direction
is better, the baseline it compares with, the convention it follows, its report group): the
registry is the only list of metrics, so reports, comparisons and this glossary cannot disagree."""

from __future__ import annotations

from lifelong.evaluation import metrics  # noqa: F401  (importing it registers the metrics)
from lifelong.evaluation import flips  # noqa: F401  (then the flip metrics)
from lifelong.l2m import metrics as l2m_metrics  # noqa: F401  (then the L2M metrics)
from lifelong.evaluation import efficiency  # noqa: F401  (then the cost and efficiency metrics)
from lifelong.evaluation.registry import METRICS, Metric, groups

R_NOTATION = ("R[i][j] = score on task j's test set after training tasks 1..i; row 0 (b_j) = before any "
              "training; T = number of tasks. Every score is 'higher is better' (accuracy, or negative MSE "
              "for regression).")

JOINT_BUDGET = ("The joint reference a*_k is one model trained from scratch on the union of tasks 1..k with the "
                "same model, optimizer, learning rate, batch size and number of epochs as the strategies it is "
                "compared with (each epoch is one pass over the union, so it takes more steps than one task); "
                "it is evaluated on task k. It is meant as an upper bound: when it scores below a strategy, "
                "intransigence turns negative and says more about the reference's budget than the strategy.")

GLOSSARY: dict[str, Metric] = METRICS  # the registry itself, under the name the CLI imports
GROUPS: dict[str, tuple[str, ...]] = groups()  # the groups of the built-in metrics, for the CLI's summary


def per_task_titles() -> dict[str, str]:
    """Metric key -> title of its per-task panel and table column, for the metrics that have one."""
    return {key: entry.per_task_title for key, entry in METRICS.items() if entry.per_task_title}


def better(metric: str) -> str | None:
    info = METRICS.get(metric)
    return info.better if info else None
