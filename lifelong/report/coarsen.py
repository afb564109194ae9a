"""Long lifetimes in a readable report: above FULL_UP_TO tasks, heatmaps, per-task bars and tables show
blocks of consecutive tasks (about BLOCKS of them) instead of single tasks, and lifetime curves a
subset of CURVES tasks. Every figure or table that does so says it in its caption (`describe`);
metrics.json keeps every per-task value."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

FULL_UP_TO = 60  # tasks shown one by one up to here
BLOCKS = 50  # about this many blocks above it
CURVES = 20  # lifetime curves drawn above FULL_UP_TO


@dataclass(frozen=True)
class TaskBlocks:
    """Consecutive tasks grouped `size` at a time (size 1 = every task on its own)."""

    n_tasks: int
    size: int

    @classmethod
    def for_tasks(cls, n_tasks: int) -> TaskBlocks:
        return cls(n_tasks, 1 if n_tasks <= FULL_UP_TO else math.ceil(n_tasks / BLOCKS))

    @property
    def coarse(self) -> bool:
        return self.size > 1

    @property
    def starts(self) -> np.ndarray:
        return np.arange(0, self.n_tasks, self.size)

    def labels(self) -> list[str]:
        """1-based task numbers of each block: "7" or "21–40"."""
        ends = np.minimum(self.starts + self.size, self.n_tasks)
        return [str(end) if end == start + 1 else f"{start + 1}–{end}" for start, end in zip(self.starts, ends)]

    def describe(self, what: str = "tasks") -> str:
        """The sentence a caption carries when blocks are in use, empty otherwise."""
        if not self.coarse:
            return ""
        return (f" With {self.n_tasks} tasks, {what} are grouped into {len(self.starts)} blocks of "
                f"{self.size} consecutive tasks (the last may be shorter), each showing the mean over the "
                f"evaluated values in its block; metrics.json keeps every task.")

    def reduce(self, values: np.ndarray, axis: int = 0, how=np.nanmean) -> np.ndarray:
        """`how` (NaN-aware) over each block of task positions along `axis`; all-NaN blocks stay NaN."""
        values = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.stack([how(values[s:s + self.size], axis=0) for s in self.starts])
        return np.moveaxis(out, 0, axis)

    def matrix(self, R: np.ndarray) -> np.ndarray:
        """A (T+1) x T score matrix as (blocks+1) x blocks: row 0 (before training) kept, rows 1..T
        and the columns grouped into blocks, each cell the mean of the evaluated cells it covers."""
        if not self.coarse:
            return R
        evaluated = ~np.isnan(R)
        sums, counts = np.where(evaluated, R, 0.0), evaluated.astype(float)
        sums, counts = (self.reduce(x, axis=1, how=np.sum) for x in (sums, counts))
        sums, counts = (np.vstack([x[:1], self.reduce(x[1:], axis=0, how=np.sum)]) for x in (sums, counts))
        with np.errstate(invalid="ignore"):
            return sums / counts  # 0 / 0 -> NaN: nothing in the block was evaluated


def curve_tasks(n_tasks: int) -> np.ndarray:
    """Which tasks' lifetime curves to draw: all up to FULL_UP_TO, else CURVES evenly spaced ones."""
    if n_tasks <= FULL_UP_TO:
        return np.arange(n_tasks)
    return np.unique(np.linspace(0, n_tasks - 1, CURVES).round().astype(int))
