"""Score the evaluated tasks with the strategy as it is now: one row of the record.

The evaluated tasks' test splits are concatenated once per stream (`TestSet`, cached), so a
row is a few large forward passes: tasks whose predictor is the same (`Strategy.predictor_key`,
the usual case: one model for every task) share batches of up to EVAL_BATCH examples, the
task-incremental output masks are added per example, and per-task sums are reduced with
`index_add_`; one sync per row. A strategy with a predictor per task (independent) gets one
pass per task.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.evaluation.fewshot import HeldOutEpisodes, Support, support_set
from lifelong.streams.task import Stream, Task
from lifelong.training import NonFiniteLossError, output_mask

EVAL_BATCH = 4096


@dataclass(frozen=True)
class TestSet:
    """The test splits of some tasks, concatenated: task i owns rows starts[i]:starts[i+1].

    `tasks` are the tasks with an empty training split and their test tensors views into `x`
    and `y`; `masks` holds each task's additive logit mask (None: no task has one).
    """

    tasks: tuple[Task, ...]
    x: torch.Tensor
    y: torch.Tensor
    segment: torch.Tensor
    starts: tuple[int, ...]
    counts: torch.Tensor
    masks: torch.Tensor | None

    @classmethod
    def of(cls, tasks, n_outputs: int) -> TestSet:
        """Copy the test splits of `tasks` (an iterable: each task may be released once copied)."""
        x, y = _Rows(), _Rows()
        headers, starts = [], [0]  # no tensor is kept per task while building (see `_Rows`)
        for task in tasks:
            x.append(task.x_test)
            y.append(task.y_test)
            starts.append(starts[-1] + len(task.y_test))
            headers.append((task.id, task.name, task.kind, task.classes, task.label, task.meta))
        x, y = x.rows(), y.rows()
        no_x, no_y = x[:0], y[:0]  # evaluation keeps no training data
        views = tuple(Task(*header[:3], no_x, no_y, x[a:b], y[a:b], classes=header[3], label=header[4],
                           meta=header[5]) for header, a, b in zip(headers, starts, starts[1:]))
        sizes = torch.tensor(np.diff(starts), device=y.device)
        segment = torch.repeat_interleave(torch.arange(len(views), device=y.device), sizes)
        masks = [output_mask(task, n_outputs, y.device) for task in views]
        mask_rows = None
        if any(m is not None for m in masks):
            mask_rows = torch.stack([torch.zeros(n_outputs, device=y.device) if m is None else m for m in masks])
        return cls(views, x, y, segment, tuple(starts), sizes.to(torch.get_default_dtype()), mask_rows)

    def head(self, k: int) -> TestSet:
        """The first k tasks (views, no copy)."""
        end = self.starts[k]
        return TestSet(self.tasks[:k], self.x[:end], self.y[:end], self.segment[:end], self.starts[:k + 1],
                       self.counts[:k], None if self.masks is None else self.masks[:k])


class _Rows:
    """Tensors appended into one buffer that doubles when full.

    Each piece is copied and can be freed with its task: keeping a small test split per task
    would pin a slice of each freed training split on the heap, and memory would grow with the
    number of tasks although nothing else is kept.
    """

    def __init__(self):
        self.buffer, self.filled = None, 0

    def append(self, piece: torch.Tensor) -> None:
        end = self.filled + len(piece)
        if self.buffer is None or end > len(self.buffer):
            grown = piece.new_empty((max(2 * end, 1024), *piece.shape[1:]))
            if self.buffer is not None:
                grown[:self.filled] = self.buffer[:self.filled]
            self.buffer = grown
        self.buffer[self.filled:end] = piece
        self.filled = end

    def rows(self) -> torch.Tensor:
        """What was appended, in a tensor of its own size."""
        return self.buffer[:self.filled].clone()


@torch.no_grad()
def evaluate_test_set(strategy, test_set: TestSet, correct: torch.Tensor | None = None) -> np.ndarray:
    """[score, loss] of every task of the test set: shape (tasks, 2). Accuracy and cross-entropy,
    or -MSE and MSE (squared error summed over outputs, averaged over examples).

    `correct` (classification only): a bool tensor of len(test_set.y), filled with whether each test
    example was classified correctly, from the argmax the accuracy already takes (prediction flips)."""
    regression = test_set.tasks[0].kind == "regression"
    sums = torch.zeros(2, len(test_set.tasks), device=test_set.y.device)  # correct predictions, loss
    for first, rows in _predictor_groups(strategy, test_set.tasks).items():
        outputs_of = strategy.predictor(test_set.tasks[first])
        for start, end in rows:
            for lo in range(test_set.starts[start], test_set.starts[end], EVAL_BATCH):
                hi = min(lo + EVAL_BATCH, test_set.starts[end])
                out, y, segment = outputs_of(test_set.x[lo:hi]), test_set.y[lo:hi], test_set.segment[lo:hi]
                if regression:
                    sums[1].index_add_(0, segment, (out.reshape(y.shape) - y).square().flatten(1).sum(1))
                    continue
                if test_set.masks is not None:
                    out = out + test_set.masks[segment]
                sums[1].index_add_(0, segment, F.cross_entropy(out, y, reduction="none"))
                hits = out.argmax(1) == y
                sums[0].index_add_(0, segment, hits.to(sums.dtype))
                if correct is not None:
                    correct[lo:hi] = hits
    losses = sums[1] / test_set.counts
    scores = -losses if regression else sums[0] / test_set.counts
    return torch.stack([scores, losses], 1).cpu().numpy().astype(float)


def _predictor_groups(strategy, tasks: tuple[Task, ...]) -> dict[int, list[tuple[int, int]]]:
    """Tasks sharing a predictor, as {first task: [runs of consecutive tasks (start, end)]}."""
    first_of: dict[Hashable, int] = {}
    groups: dict[int, list[tuple[int, int]]] = {}
    for i, task in enumerate(tasks):
        first = first_of.setdefault(strategy.predictor_key(task), i)
        runs = groups.setdefault(first, [])
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return groups


def evaluate_stream(strategy, tasks, n_outputs: int) -> np.ndarray:
    """[score, loss] of every task (seen or not) for one row of the record: shape (T, 2)."""
    return evaluate_test_set(strategy, TestSet.of(tasks, n_outputs))


@dataclass(frozen=True)
class FewShotSet:
    """The evaluated tasks for few-shot rows: test splits, each with its support set as training split."""

    tasks: tuple[Task, ...]
    supports: tuple[Support | HeldOutEpisodes, ...]

    @classmethod
    def of(cls, tasks, shots: int, seed: int) -> FewShotSet:
        kept, supports = [], []
        for task in tasks:
            support = support_set(task, shots, seed)
            kept.append(task.test_only(*support) if isinstance(support, tuple) else task.test_only())
            supports.append(support)
        return cls(tuple(kept), tuple(supports))

    def head(self, k: int) -> FewShotSet:
        return FewShotSet(self.tasks[:k], self.supports[:k])


_CACHE: weakref.WeakKeyDictionary[Stream, tuple[Hashable, object]] = weakref.WeakKeyDictionary()


def evaluation_set(stream: Stream, key: Hashable, build: Callable[[], object]):
    """`build()`, kept with the stream under `key` so every strategy and seed of a run reuses it;
    one entry per stream (a new key replaces the old one, bounding memory)."""
    cached = _CACHE.get(stream)
    if cached is None or cached[0] != key:
        _CACHE[stream] = cached = (key, build())
    return cached[1]


def test_set_of(stream: Stream, pool: tuple[int, ...], device: torch.device) -> TestSet:
    """The stream's test set over the tasks of `pool`, built once per stream and device."""
    return evaluation_set(stream, ("standard", pool, str(device)),
                          lambda: TestSet.of((stream.tasks[i].to(device) for i in pool), stream.n_outputs))


def few_shot_set_of(stream: Stream, pool: tuple[int, ...], device: torch.device, shots: int, seed: int) -> FewShotSet:
    """The few-shot evaluation set of `pool`: support sets depend on the run seed, so one per seed."""
    return evaluation_set(stream, ("few-shot", pool, str(device), shots, seed),
                          lambda: FewShotSet.of((stream.tasks[i].to(device) for i in pool), shots, seed))


def evaluate_stream_few_shot(strategy, tasks: tuple[Task, ...], supports, steps: int) -> np.ndarray:
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
