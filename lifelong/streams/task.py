"""The types every other module speaks: a `Task`, the `Tasks` of a stream, and the `Stream`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

if TYPE_CHECKING:
    import torch

TaskKind = Literal["classification", "regression"]
Scenario = Literal["task-il", "class-il", "domain-il", "few-shot"]


@dataclass(frozen=True)
class Task:
    """One task of a stream: its data and what the learner is allowed to know about it.

    `classes` are global label ids (the columns of the shared output layer). `label` is the
    task identity handed to the learner, or None when the scenario hides it (class- and
    domain-incremental). `meta` records how the task was made (permutation seed, angle, ...).
    The training split is empty only in what evaluation keeps of a task (`test_only`).
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
        if len(self.x_test) == 0:
            raise ValueError(f"task {self.name!r}: empty test split")

    def to(self, device: torch.device | str) -> Task:
        """The same task with its tensors on `device` (a no-op when already there)."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        return Task(self.id, self.name, self.kind, **moved, classes=self.classes,
                    label=self.label, meta=self.meta)

    def test_only(self, x_train: torch.Tensor | None = None, y_train: torch.Tensor | None = None) -> Task:
        """The task as evaluation keeps it: its test split, and as training split the given one
        (a few-shot support set) or none, so the full training data can be released."""
        if x_train is None:
            x_train, y_train = self.x_train.new_empty((0, *self.x_train.shape[1:])), \
                self.y_train.new_empty((0, *self.y_train.shape[1:]))
        return Task(self.id, self.name, self.kind, x_train, y_train, self.x_test, self.y_test,
                    classes=self.classes, label=self.label, meta=self.meta)


class Tasks(Sequence):
    """A stream's tasks, each built when asked for and released when no one holds it any more.

    `build(i)` derives task i from its own seed, so building it twice gives the same tensors;
    the last `keep` tasks built are kept, so the orchestrator and a strategy asking for the same
    task do not build it twice (a small stream keeps them all, see `build_stream`). Names are
    known up front (the record's columns need them).
    """

    def __init__(self, names: Sequence[str], build: Callable[[int], Task], keep: int = 2):
        self.names = tuple(names)
        self._build, self._keep = build, keep
        self._recent: OrderedDict[int, Task] = OrderedDict()

    @classmethod
    def of(cls, tasks: Sequence[Task]) -> Tasks:
        """Tasks already built (tests, hand-made streams): held as given."""
        tasks = tuple(tasks)
        return cls([t.name for t in tasks], tasks.__getitem__, keep=0)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if not -len(self) <= index < len(self):
            raise IndexError(f"task index {index} out of range for {len(self)} tasks")
        index %= len(self)
        if index in self._recent:
            self._recent.move_to_end(index)
            return self._recent[index]
        task = self._build(index)
        if self._keep:
            self._recent[index] = task
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return task

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True, eq=False)
class Stream:
    """An ordered sequence of tasks that every strategy of a run sees identically.

    `tasks` may be given as a tuple of built tasks; it is held as `Tasks`. Streams compare by
    identity, so caches can key on them (see `lifelong.evaluation.evaluator`).
    """

    name: str
    scenario: Scenario
    tasks: Tasks
    input_shape: tuple[int, ...]
    n_outputs: int
    seed: int
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, Tasks):
            object.__setattr__(self, "tasks", Tasks.of(self.tasks))

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)

    @property
    def kind(self) -> TaskKind:
        return self.tasks[0].kind
