"""Evaluation schedules: which rows of the record are filled, and which tasks each row scores.

The full matrix (every task after every task) costs T x (T+1) evaluations; for long lifetimes
`evaluation.every: k` fills only every k-th row and `evaluation.tasks` only some columns:

- `all`: every task; `seen`: tasks 1..i in row i; `seen+next`: tasks 1..i+1 in row i;
- `sample(n)`: n tasks drawn once from the stream seed, the same for every row, strategy and seed.

Row 0 (before training) always scores every task the schedule may ever score: it is the
untrained baseline that forward transfer subtracts. The row after the last task is always
evaluated. Skipped cells stay NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.seeding import derive_seed


@dataclass(frozen=True)
class Schedule:
    n_tasks: int
    every: int
    tasks: str
    pool: tuple[int, ...]  # the tasks any row may score, in stream order

    @classmethod
    def of(cls, spec: EvaluationSpec, n_tasks: int, stream_seed: int) -> Schedule:
        spec.check_stream(n_tasks)
        pool = range(n_tasks)
        if spec.sample_size is not None:
            rng = np.random.default_rng(derive_seed(stream_seed, "schedule"))
            pool = sorted(rng.choice(n_tasks, spec.sample_size, replace=False).tolist())
        return cls(n_tasks, spec.every, spec.tasks, tuple(pool))

    def evaluates(self, row: int) -> bool:
        """Whether row `row` (after `row` tasks) is evaluated at all."""
        return row == 0 or row == self.n_tasks or row % self.every == 0

    def scored(self, row: int) -> int:
        """How many tasks of `pool`, from its start, row `row` scores."""
        if row == 0 or self.tasks not in ("seen", "seen+next"):
            return len(self.pool)
        return min(row + (self.tasks == "seen+next"), self.n_tasks)
