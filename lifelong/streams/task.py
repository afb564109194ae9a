"""The two types every other module speaks: a `Task` and an ordered `Stream` of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

TaskKind = Literal["classification", "regression"]
Scenario = Literal["task-il", "class-il", "domain-il", "few-shot"]


@dataclass(frozen=True)
class Task:
    """One task of a stream: its data and what the learner is allowed to know about it.

    `classes` are global label ids (the columns of the shared output layer). `label` is the
    task identity handed to the learner, or None when the scenario hides it (class- and
    domain-incremental). `meta` records how the task was made (permutation seed, angle, ...).
    """

    id: int
    name: str
    kind: TaskKind
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...] = ()
    label: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(f"task {self.name!r}: inputs and targets differ in length")
        if len(self.x_train) == 0 or len(self.x_test) == 0:
            raise ValueError(f"task {self.name!r}: empty train or test split")

    def to(self, device: torch.device | str) -> Task:
        """The same task with its tensors on `device` (a no-op when already there)."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Task(self.id, self.name, self.kind, **moved, classes=self.classes,
                    label=self.label, meta=self.meta)


@dataclass(frozen=True)
class Stream:
    """An ordered sequence of tasks that every strategy of a run sees identically."""

    name: str
    scenario: Scenario
    tasks: tuple[Task, ...]
    input_shape: tuple[int, ...]
    n_outputs: int
    seed: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)

    @property
    def kind(self) -> TaskKind:
        return self.tasks[0].kind
