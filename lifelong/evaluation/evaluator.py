"""Score every task of the stream with the strategy as it is now, in large batches, one sync per round."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.evaluation.fewshot import HeldOutEpisodes
from lifelong.streams.task import Task
from lifelong.training import NonFiniteLossError, output_mask

EVAL_BATCH = 4096


@torch.no_grad()
def evaluate_task(outputs_of, task: Task, n_outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(score, loss) on the task's test set as 0-d tensors: accuracy and cross-entropy, or -MSE and MSE."""
    mask = output_mask(task, n_outputs, task.x_test.device)
    score_sum = torch.zeros((), device=task.x_test.device)
    loss_sum = torch.zeros((), device=task.x_test.device)
    for start in range(0, len(task.x_test), EVAL_BATCH):
        x, y = task.x_test[start:start + EVAL_BATCH], task.y_test[start:start + EVAL_BATCH]
        out = outputs_of(x)
        if task.kind == "regression":
            err = F.mse_loss(out.reshape(y.shape), y, reduction="sum")
            loss_sum += err
            score_sum -= err
        else:
            if mask is not None:
                out = out + mask
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            score_sum += (out.argmax(1) == y).sum()
    n = len(task.x_test)
    return score_sum / n, loss_sum / n


def evaluate_stream(strategy, tasks: tuple[Task, ...], n_outputs: int) -> np.ndarray:
    """[score, loss] of every task (seen or not) for one row of the record: shape (T, 2)."""
    results = [evaluate_task(strategy.predictor(task), task, n_outputs) for task in tasks]
    return torch.stack([torch.stack(pair) for pair in results]).cpu().numpy().astype(float)


def evaluate_stream_few_shot(strategy, tasks: tuple[Task, ...], supports: list, steps: int) -> np.ndarray:
    """Adaptation curves of every task: shape (T, steps+1, 2), [..., 0] score, [..., 1] loss.

    An episodic task's curve is the mean over its held-out episodes. All episodes of all tasks
    go to the strategy in one call, so a strategy that vmaps adapts them all at once.
    """
    episodes, episode_supports, owner = [], [], []
    for i, (task, support) in enumerate(zip(tasks, supports)):
        if isinstance(support, HeldOutEpisodes):
            episodes += support.tasks
            episode_supports += support.supports
        else:
            episodes.append(task)
            episode_supports.append(support)
        owner += [i] * (len(episodes) - len(owner))
    curves = torch.stack(list(strategy.adaptation_curves(episodes, episode_supports, steps))).detach()
    _check_finite_curves(curves, episodes, steps)
    owner = torch.tensor(owner, device=curves.device)
    sums = curves.new_zeros(len(tasks), *curves.shape[1:]).index_add_(0, owner, curves)
    counts = torch.bincount(owner, minlength=len(tasks)).to(curves.dtype)
    return (sums / counts[:, None, None]).cpu().numpy().astype(float)


def _check_finite_curves(curves: torch.Tensor, episodes: list[Task], steps: int) -> None:
    """Raise when an adaptation diverged: a NaN in the record would poison every metric silently."""
    diverged = ~torch.isfinite(curves).flatten(1).all(1)
    if bool(diverged.any()):
        first = episodes[int(diverged.nonzero()[0, 0])]
        raise NonFiniteLossError(
            f"few-shot adaptation diverged on {int(diverged.sum())} of {len(episodes)} tasks (first: {first.name!r}) "
            f"within evaluation.steps={steps}; lower the adaptation step size (params.inner_lr of a meta-learner, "
            "evaluation.inner_lr of the others) or evaluation.steps. Meta-SGD's learned step sizes are trained for "
            "params.inner_steps steps and may diverge over more.")
