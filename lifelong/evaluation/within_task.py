"""Scores of the task being learned, taken during its training (`evaluation.within_task_every: k`).

After every k-th marked training step (lifelong.cost.flops marks the steps of `training.fit` and
of the meta-learners' loops), and after the last step, the task's own test set is scored, with
FLOP counting suspended: the curve always ends where the task's training ended. Each
point is [step, samples, flops, score]: training steps, training examples drawn and counted FLOPs
since the task began (NaN with `cost: off`), and the score (accuracy, or -MSE). The curve says how
much compute and data a task needed to reach a level (`flops_to_reach`, `samples_to_reach`), where
R alone says only whether the task reached it by its end. Probes are evaluations inside the task's
training, so they add to its wall time and energy (not to its FLOPs); the option is off by default.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from lifelong.cost import flops
from lifelong.evaluation.evaluator import TestSet, evaluate_test_set
from lifelong.streams.task import Task


class WithinTaskProbe:
    """Scores `task` every `every` marked steps of the training it is active around; `points` holds them."""

    def __init__(self, every: int, strategy, task: Task, n_outputs: int):
        self.every, self.strategy = every, strategy
        self.test_set = TestSet.of((task,), n_outputs)
        self.points: list[list[float]] = []
        self._steps = self._samples = 0

    @classmethod
    def active(cls, every: int, strategy, task: Task, n_outputs: int):
        """A context that probes the task's training, yielding the probe (None when `every` is 0)."""
        if not every:
            return nullcontext(None)
        return cls(every, strategy, task, n_outputs)._probing()

    @contextmanager
    def _probing(self):
        with flops.probing(self._after_step):
            yield self
        if self._steps % self.every:  # the last steps were not probed: score the task's end
            with flops.uncounted():
                self._score()

    def _after_step(self, samples: int) -> None:
        self._steps += 1
        self._samples += samples
        if self._steps % self.every == 0:
            self._score()

    def _score(self) -> None:
        modes = _training_modes(self.strategy)
        score = float(evaluate_test_set(self.strategy, self.test_set)[0, 0])
        for module, training in modes:
            module.train(training)
        self.points.append([self._steps, self._samples, flops.counted_so_far(), score])


def _training_modes(strategy) -> list[tuple[torch.nn.Module, bool]]:
    """Every module the strategy holds and whether it is in training mode: a predictor switches to
    eval mode, and the training loop goes on after the probe as it was."""
    modules = [value for value in vars(strategy).values() if isinstance(value, torch.nn.Module)]
    return [(m, m.training) for module in modules for m in module.modules()]
