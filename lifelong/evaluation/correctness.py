"""Per-example correctness of one evaluated row, bit-packed: what prediction-flip metrics need.

The evaluator already takes each test example's argmax for the accuracy; the orchestrator keeps
whether it was right, one bit per example (`numpy.packbits`, examples of the row's tasks in
evaluation order, no padding between tasks), and the record log appends it as one line after the
row's scores:

    {"line": "correct", "strategy", "seed", "after_task", "tasks", "sizes", "bits"}

`tasks` are the evaluated task indices as runs [first, count] of consecutive indices, `sizes` their
test-set sizes as runs [size, count] of equal sizes (so a row of T tasks costs a few bytes, not
O(T)), `bits` the packed bits in base64: about 1.4 bits per example with the line. Only
classification under standard evaluation has it (regression has no "correct", and a few-shot score
belongs to an adapted copy, not to the model that flips).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RowCorrectness:
    after_task: int
    tasks: tuple[int, ...]
    sizes: tuple[int, ...]
    bits: bytes  # numpy.packbits of the concatenated per-example correctness

    @classmethod
    def of(cls, after_task: int, tasks, sizes, correct: np.ndarray) -> RowCorrectness:
        return cls(int(after_task), tuple(int(t) for t in tasks), tuple(int(n) for n in sizes),
                   np.packbits(np.asarray(correct, dtype=bool)).tobytes())

    def per_task(self) -> dict[int, np.ndarray]:
        """Task index -> bool vector of its examples' correctness."""
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=sum(self.sizes)).astype(bool)
        ends = np.cumsum(self.sizes)
        return {task: flat[end - n:end] for task, n, end in zip(self.tasks, self.sizes, ends)}

    def line(self, strategy: str, seed: int) -> dict:
        return {"line": "correct", "strategy": strategy, "seed": seed, "after_task": self.after_task,
                "tasks": _runs(self.tasks, step=1), "sizes": _runs(self.sizes, step=0),
                "bits": base64.b64encode(self.bits).decode()}

    @classmethod
    def from_line(cls, line: dict) -> RowCorrectness:
        bits = base64.b64decode(line["bits"], validate=True)
        tasks, sizes = _expand(line["tasks"], step=1), _expand(line["sizes"], step=0)
        if len(tasks) != len(sizes) or len(bits) != (sum(sizes) + 7) // 8:
            raise ValueError(f"correctness of row {line['after_task']} holds {len(bits)} bytes for "
                             f"{sum(sizes)} examples of {len(tasks)} tasks")
        return cls(int(line["after_task"]), tasks, sizes, bits)


def _runs(values, step: int) -> list[list[int]]:
    """[[first, count], ...]: runs of values each `step` above the one before (1: consecutive, 0: equal)."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][0] + step * runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return runs


def _expand(runs, step: int) -> tuple[int, ...]:
    return tuple(int(first) + step * k for first, count in runs for k in range(int(count)))
