"""N-way few-shot segments: each task is `ways` classes that episodes deal to the N outputs.

How these tasks store their data, and how episodes are drawn from them: lifelong.streams.episodic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from lifelong.errors import StreamError
from lifelong.seeding import derive_seed
from lifelong.streams.builtin._common import check_examples, class_groups, dataset_meta, dataset_of, task_rng
from lifelong.streams.registry import Recipe, SourceSize, SourceSpec, TaskFootprint, stream_builder
from lifelong.streams.sources import Dataset
from lifelong.streams.task import Task

if TYPE_CHECKING:
    import torch


class _NWaySpec(SourceSpec):
    scenario: Literal["few-shot"] = "few-shot"
    ways: int = Field(default=5, ge=2, description="classes per segment (N of N-way)")
    train_per_class: int = Field(default=100, ge=1, description="training examples kept per class")
    test_per_class: int = Field(default=40, ge=1, description="test examples kept per class (the query)")
    eval_episodes: int = Field(default=10, ge=1, description="held-out episodes averaged per evaluation")

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        if source is None:
            return None
        return TaskFootprint(self.ways * self.train_per_class, self.ways * self.test_per_class, source.row_bytes)


class NWaySpec(_NWaySpec):
    """N-way few-shot segments: each task of the stream is `ways` classes, disjoint across tasks.

    Episodes assign the segment's classes to the N outputs at random (`episode_labels:
    shuffled`, the usual N-way K-shot protocol) or keep the stored assignment (`fixed`).
    """

    builder: Literal["nway"]
    class_order: list[int] | Literal["fixed", "shuffled"] = "fixed"
    episode_labels: Literal["shuffled", "fixed"] = "shuffled"


class NWayConflictSpec(_NWaySpec):
    """Segments that conflict on purpose: the same inputs in every task, each task with its own
    class -> output assignment (task 1 the identity), and episodes that keep it. What one
    segment teaches, the next contradicts, so negative transfer can show."""

    builder: Literal["nway_conflict"]
    classes: list[int] | None = Field(default=None, description="the `ways` dataset classes; default the first")

    @model_validator(mode="after")
    def _classes_match_ways(self):
        if self.classes is not None and (len(self.classes) != self.ways or len(set(self.classes)) != self.ways):
            raise ValueError(f"classes {self.classes} must list {self.ways} distinct classes (ways={self.ways})")
        return self


def _check_counts(spec: _NWaySpec, data: Dataset, classes: list[int]) -> None:
    for split, need in (("train", spec.train_per_class), ("test", spec.test_per_class)):
        check_examples(spec, data, classes, **{f"need_{split}": need},
                       fix=f"lower {split}_per_class")


def _per_class(labels: torch.Tensor, classes: list[int], count: int, rng: np.random.Generator) -> torch.Tensor:
    """`count` random indices of each class in `labels`, in a random order."""
    import torch

    labels = labels.numpy()
    picks = [rng.choice(np.flatnonzero(labels == cls), count, replace=False) for cls in classes]
    return torch.from_numpy(rng.permutation(np.concatenate(picks)))


def _nway_task(spec: _NWaySpec, data: Dataset, i: int, classes: list[int], slots: list[int],
               rng: np.random.Generator, episode_labels: str, name: str) -> Task:
    """An N-way segment: class `classes[s]` is stored with label `slots[s]`."""
    import torch

    train = _per_class(data.y_train, classes, spec.train_per_class, rng)
    test = _per_class(data.y_test, classes, spec.test_per_class, rng)
    relabel = torch.full((data.n_classes,), -1, dtype=torch.long)
    relabel[classes] = torch.tensor(slots)
    return Task(i, name, "classification", data.x_train[train], relabel[data.y_train[train]],
                data.x_test[test], relabel[data.y_test[test]], classes=tuple(range(spec.ways)),
                meta={"episodic": "classes", "dataset_classes": classes, "slots": slots,
                      "episode_labels": episode_labels, "eval_episodes": spec.eval_episodes})


@stream_builder(NWaySpec)
def nway(spec: NWaySpec) -> Recipe:
    data = dataset_of(spec)
    groups = class_groups(spec, [spec.ways] * spec.n_tasks, "ways", data.n_classes)
    _check_counts(spec, data, [c for group in groups for c in group])
    names = [f"T{i + 1} ({'/'.join(data.class_names[c] for c in classes)})" for i, classes in enumerate(groups)]

    def make(i: int) -> Task:
        return _nway_task(spec, data, i, groups[i], list(range(spec.ways)), task_rng(spec.seed, i),
                          spec.episode_labels, names[i])

    return Recipe(names, make, data.input_shape, spec.ways, dataset_meta(data))


@stream_builder(NWayConflictSpec)
def nway_conflict(spec: NWayConflictSpec) -> Recipe:
    """Every task: the same classes and the same examples (one seed for all), its own label slots."""
    data = dataset_of(spec)
    classes = spec.classes or list(range(spec.ways))
    if not set(classes) <= set(range(data.n_classes)):
        raise StreamError(f"stream {spec.name!r}: classes {classes} are not all among the {data.n_classes} "
                         f"classes of {data.name}")
    _check_counts(spec, data, classes)
    slots = [list(range(spec.ways)) if i == 0 else task_rng(spec.seed, i).permutation(spec.ways).tolist()
             for i in range(spec.n_tasks)]
    described = "/".join(data.class_names[c] for c in classes)
    names = [f"T{i + 1} ({described} -> {''.join(map(str, slots[i]))})" for i in range(spec.n_tasks)]

    def make(i: int) -> Task:
        same_examples = np.random.default_rng(derive_seed(spec.seed, "stream"))
        return _nway_task(spec, data, i, classes, slots[i], same_examples, "fixed", names[i])

    return Recipe(names, make, data.input_shape, spec.ways, dataset_meta(data))
