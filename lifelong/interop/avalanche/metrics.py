"""A Lifelong record in Avalanche's words: what Avalanche 0.6's `EvaluationPlugin` logs at the end of a
stream (accuracy, forgetting, BWT and forward-transfer metrics, per experience and per stream), computed
from the accuracy matrix R with Lifelong's metric functions. It is the README's table "Avalanche's
numbers and ours" as code; `tests/interop/test_avalanche_numbers.py` checks it against Avalanche.

Avalanche evaluates the whole test stream before training (row 0 of R; its forward transfer needs it)
and after each experience. Needs numpy only: Avalanche itself is not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lifelong.evaluation import metrics


def avalanche_metrics(R, test_sizes: Sequence[int], task_labels: Sequence[int] | None = None,
                      stream: str = "test_stream") -> dict[str, float]:
    """Avalanche's metric names -> values after the last experience, from R (shape (T+1, T)).

    `test_sizes[j]`: examples in task j's test set (Avalanche's stream accuracy pools examples);
    `task_labels[j]`: experience j's task label (default 0 for all), which Avalanche puts in the
    names: per-experience metrics carry their own, the stream accuracy (pooled over every label)
    the last experience's. Keys follow Avalanche's `get_metric_name`, e.g.
    `StreamForgetting/eval_phase/test_stream`, `Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp002`.
    """
    R = np.asarray(R, dtype=float)
    T = R.shape[1]
    labels = np.zeros(T, dtype=int) if task_labels is None else np.asarray(task_labels, dtype=int)
    phase = f"eval_phase/{stream}"
    out = {f"Top1_Acc_Stream/{phase}/Task{labels[-1]:03d}": metrics.sample_weighted_accuracy(R, test_sizes),
           f"StreamForgetting/{phase}": metrics.avalanche_forgetting(R), f"StreamBWT/{phase}": metrics.bwt(R),
           f"StreamForwardTransfer/{phase}": metrics.fwt(R)}
    forgetting, transfer = metrics.avalanche_forgetting_per_task(R), metrics.fwt_per_task(R)
    for j in range(T):
        exp = f"{phase}/Task{labels[j]:03d}/Exp{j:03d}"
        out[f"Top1_Acc_Exp/{exp}"] = float(R[-1, j])
        if j < T - 1:  # Avalanche reports forgetting of experiences trained before the last one
            out[f"ExperienceForgetting/{exp}"], out[f"ExperienceBWT/{exp}"] = float(forgetting[j]), -float(forgetting[j])
        if j > 0:  # and forward transfer of experiences after the first
            out[f"ExperienceForwardTransfer/{exp}"] = float(transfer[j])
    return out
