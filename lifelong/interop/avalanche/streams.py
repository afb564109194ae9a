"""Avalanche benchmarks as Lifelong streams, and Lifelong streams as Avalanche benchmarks.

An Avalanche benchmark (avalanche-lib 0.6.0: `class_incremental_benchmark`, `benchmark_from_datasets`,
`nc_benchmark`/`ni_benchmark`, `tensors_benchmark`, SplitMNIST and the other classic ones) has a
`train_stream` and a `test_stream` of experiences, each holding a dataset of (x, y, task label).
Experience i of both becomes Lifelong task i. Tasks are built when the run reaches them, like the
built-in builders' tasks: only the targets and task labels are read up front (names, classes,
scenario, sizes), the inputs when the task is built. Inputs go through each dataset's *eval*
transforms: a Lifelong task is fixed tensors, so a random augmentation would be drawn once and frozen.

Only this module (and those it is imported from, after `require()`) touches avalanche.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lifelong.errors import StreamError
from lifelong.streams.builders import KEEP_ALL_BYTES, KEEP_LAST
from lifelong.streams.registry import Recipe, TaskFootprint
from lifelong.streams.task import Scenario, Stream, Task, Tasks

if TYPE_CHECKING:
    from collections.abc import Sequence

SCENARIOS = ("class-il", "task-il", "domain-il")  # what an Avalanche classification benchmark can be
LOAD_BATCH = 1024


@dataclass(frozen=True)
class Experience:
    """What is known of a train experience and its test experience without loading their inputs."""

    train: object  # the Avalanche experiences
    test: object
    classes: tuple[int, ...]  # sorted
    task_label: int
    n_train: int
    n_test: int


@dataclass(frozen=True)
class Layout:
    """An Avalanche benchmark, read: its experiences, the scenario they make, the shape of its data."""

    experiences: tuple[Experience, ...]
    detected: Scenario
    input_shape: tuple[int, ...]
    n_outputs: int  # the largest class id + 1 (Avalanche's `n_classes` counts PermutedMNIST's classes per experience)
    test_shared: bool  # one test experience for all train experiences (ni_benchmark), cut by classes

    def footprint(self) -> TaskFootprint:
        row_bytes = 4 * math.prod(self.input_shape) + 8  # float32 input, int64 label
        return TaskFootprint(max(e.n_train for e in self.experiences), max(e.n_test for e in self.experiences),
                             row_bytes)

    def scenario(self, stated: str | None) -> Scenario:
        """The stated scenario (checked), or the detected one."""
        if stated in (None, "auto"):
            return self.detected
        if stated not in SCENARIOS:
            raise StreamError(f"scenario {stated!r} is not one an Avalanche classification benchmark can be; "
                              f"give one of {', '.join(SCENARIOS)} (or leave it out to detect it)")
        return stated

    def outputs(self, stated: int | None) -> int:
        """The stated output count (checked to cover every class), or the largest class id + 1."""
        if stated is not None and stated < self.n_outputs:
            raise StreamError(f"n_outputs {stated} is too few: the benchmark has class {self.n_outputs - 1}; give at "
                              f"least {self.n_outputs} or leave it out")
        return stated or self.n_outputs

    def recipe(self, scenario: Scenario, n_outputs: int | None = None) -> Recipe:
        """Task i built from experience i when asked for; task labels only where the scenario gives them."""
        task_labels = [e.task_label for e in self.experiences]
        if scenario == "task-il" and self.detected != "task-il":
            task_labels = list(range(len(task_labels)))  # stated task-il on a benchmark without task labels

        def make(i: int) -> Task:
            exp = self.experiences[i]
            x_train, y_train = _tensors(exp.train.dataset, f"train experience {i}")
            x_test, y_test = _tensors(exp.test.dataset, f"test experience {0 if self.test_shared else i}")
            if self.test_shared:
                keep = torch.isin(y_test, torch.tensor(exp.classes))
                x_test, y_test = x_test[keep], y_test[keep]
            stray = set(torch.cat([y_train, y_test]).unique().tolist()) - set(exp.classes)
            if stray:
                raise StreamError(f"the Avalanche benchmark's experience {i} gives labels {sorted(stray)} that its "
                                  f"`targets` ({_describe(exp.classes)}) do not have; a target transform must be "
                                  "reflected in the dataset's targets")
            return Task(i, names[i], "classification", x_train, y_train, x_test, y_test, classes=exp.classes,
                        label=task_labels[i] if scenario == "task-il" else None,
                        meta={"avalanche_experience": i, "avalanche_task_label": exp.task_label})

        names = [f"T{i + 1} (classes {_describe(e.classes)})" for i, e in enumerate(self.experiences)]
        return Recipe(names, make, self.input_shape, self.outputs(n_outputs),
                      {"avalanche": {"detected_scenario": self.detected, "shared_test_experience": self.test_shared}})


def read_benchmark(benchmark) -> Layout:
    """Read an Avalanche benchmark's experiences (targets, task labels, sizes); load no inputs but one."""
    train, test = (_stream(benchmark, name) for name in ("train_stream", "test_stream"))
    if not train:
        raise StreamError("the Avalanche benchmark's train_stream has no experiences")
    if len(test) not in (1, len(train)):
        raise StreamError(f"the Avalanche benchmark has {len(train)} train experiences and {len(test)} test "
                          "experiences; Lifelong needs one test experience per train experience (or one for all)")
    shared = len(test) == 1 and len(train) > 1
    experiences = []
    for i, exp in enumerate(train):
        exp_test = test[0] if shared else test[i]
        classes = _classes(exp, f"train experience {i}")
        test_classes = _classes(exp_test, f"test experience {0 if shared else i}")
        n_test = _count(exp_test, classes) if shared else len(exp_test.dataset)
        if n_test == 0:
            raise StreamError(f"the Avalanche benchmark's test experience for train experience {i} has no example of "
                              f"its classes {_describe(classes)}: every task needs a test split")
        if not shared:  # a task's classes are those it is trained or tested on
            classes = tuple(sorted(set(classes) | set(test_classes)))
        experiences.append(Experience(exp, exp_test, classes, _task_label(exp, f"train experience {i}"),
                                      len(exp.dataset), n_test))
    x, _ = _tensors(experiences[0].train.dataset, "train experience 0", limit=1)
    return Layout(tuple(experiences), _detect(experiences), tuple(x.shape[1:]),
                  max(c for e in experiences for c in e.classes) + 1, shared)


def from_avalanche(benchmark, scenario: str | None = None, name: str = "avalanche",
                   n_outputs: int | None = None) -> Stream:
    """An Avalanche benchmark as a Lifelong `Stream`, its tasks built when first asked for.

    `scenario`: class-il, task-il or domain-il; None detects it (see `_detect`). `n_outputs`: the model's
    outputs; None: the largest class id + 1.
    """
    layout = read_benchmark(benchmark)
    kind = layout.scenario(scenario)
    recipe = layout.recipe(kind, n_outputs)
    task = layout.footprint()
    size = len(layout.experiences) * (task.train_rows + task.test_rows) * task.row_bytes
    keep = len(layout.experiences) if size <= KEEP_ALL_BYTES else KEEP_LAST
    return Stream(name, kind, Tasks(recipe.names, recipe.make, keep), recipe.input_shape, recipe.n_outputs, 0,
                  meta={**recipe.meta, "builder": "avalanche"})


def to_avalanche(stream: Stream):
    """A Lifelong classification stream as an Avalanche benchmark (`train_stream`, `test_stream`).

    Task i becomes experience i of both streams, its tensors as they are, with task label `task.label`
    (0 where the scenario hides it), so Avalanche's strategies and metrics run on it. Every task is
    built (Avalanche's streams here are lists). `n_classes` is the stream's output count (give it back to
    `from_avalanche` as `n_outputs` when some outputs have no class in the stream).
    """
    from avalanche.benchmarks import benchmark_from_datasets, with_task_labels
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tensor_dataset

    if stream.kind != "classification":
        raise StreamError(f"stream {stream.name!r} is {stream.kind}: Avalanche benchmarks are streams of "
                          "classification experiences; convert a classification stream")
    train, test = [], []
    for task in stream.tasks:
        label = 0 if task.label is None else task.label
        train.append(tensor_dataset(task.x_train, task.y_train, task_labels=label))
        test.append(tensor_dataset(task.x_test, task.y_test, task_labels=label))
    benchmark = with_task_labels(benchmark_from_datasets(train=train, test=test))
    classes = [set(task.classes) for task in stream.tasks]
    for experiences in (benchmark.train_stream, benchmark.test_stream):
        _classes_timeline(experiences, classes)
    benchmark.n_classes = stream.n_outputs
    return benchmark


def _classes_timeline(experiences, classes: list[set[int]]) -> None:
    """Avalanche's class attributes from the tasks' classes (`with_classes_timeline` reads them off the targets,
    which may lack a class of the task: a domain-incremental task of 30 examples over 10 classes)."""
    every, seen = set().union(*classes), set()
    for exp, now in zip(experiences, classes):
        exp.classes_in_this_experience, exp.previous_classes = set(now), set(seen)
        seen |= now
        exp.classes_seen_so_far, exp.future_classes = set(seen), every - seen


def _stream(benchmark, attribute: str) -> Sequence:
    experiences = getattr(benchmark, attribute, None)
    if experiences is None:
        raise StreamError(f"{type(benchmark).__name__} is not an Avalanche benchmark: it has no {attribute} "
                          "(make one with class_incremental_benchmark, benchmark_from_datasets, nc_benchmark, ...)")
    return list(experiences)


def _targets(exp, where: str) -> torch.Tensor:
    targets = getattr(getattr(exp, "dataset", None), "targets", None)
    if targets is None:
        raise StreamError(f"the Avalanche benchmark's {where} has no targets: Lifelong takes classification "
                          "experiences whose dataset has a `targets` attribute")
    try:
        return torch.as_tensor([int(t) for t in targets], dtype=torch.long)
    except (TypeError, ValueError):
        raise StreamError(f"the Avalanche benchmark's {where} has targets that are not class ids "
                          f"(e.g. {targets[0]!r}); Lifelong takes classification experiences") from None


def _classes(exp, where: str) -> tuple[int, ...]:
    """The experience's `classes_in_this_experience` when they cover its targets, else its targets' classes."""
    found = {int(c) for c in _targets(exp, where).unique()}
    if not found:
        raise StreamError(f"the Avalanche benchmark's {where} is empty")
    declared = getattr(exp, "classes_in_this_experience", None)
    declared = {int(c) for c in declared} if declared is not None else set()
    return tuple(sorted(declared if found <= declared else found))


def _count(exp, classes: tuple[int, ...]) -> int:
    return int(torch.isin(_targets(exp, "test experience 0"), torch.tensor(classes)).sum())


def _task_label(exp, where: str) -> int:
    labels = getattr(exp.dataset, "targets_task_labels", None)
    found = sorted({int(t) for t in labels}) if labels is not None else [0]
    if len(found) != 1:
        raise StreamError(f"the Avalanche benchmark's {where} mixes task labels {found}; a Lifelong task has "
                          "one task label")
    return found[0]


def _detect(experiences: Sequence[Experience]) -> Scenario:
    """task-il when experiences carry different task labels; class-il when no class comes back in a later
    experience; domain-il otherwise (ni_benchmark, PermutedMNIST: the same classes, new inputs)."""
    if len({e.task_label for e in experiences}) > 1:
        return "task-il"
    seen: set[int] = set()
    for e in experiences:
        if seen & set(e.classes):
            return "domain-il"
        seen |= set(e.classes)
    return "class-il"


def _tensors(dataset, where: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """An experience's (inputs, targets) as float32 and int64 tensors, through its eval transforms."""
    dataset = dataset.eval() if hasattr(dataset, "eval") else dataset
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))

    def collate(batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        bad = next((row[0] for row in batch if not isinstance(row[0], torch.Tensor)), None)
        if bad is not None:
            raise StreamError(f"the Avalanche benchmark's {where} gives inputs of type {type(bad).__name__}, not "
                              "tensors; give its dataset a transform that makes tensors (e.g. ToTensor)")
        return torch.stack([row[0] for row in batch]).float(), torch.tensor([int(row[1]) for row in batch])

    # its own generator: a DataLoader draws a seed, which would move torch's global one (model inits)
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=LOAD_BATCH, collate_fn=collate,
                                               generator=torch.Generator()))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _describe(classes: Sequence[int]) -> str:
    return "/".join(map(str, classes)) if len(classes) <= 6 else f"{classes[0]}..{classes[-1]} ({len(classes)})"

