"""Streams whose transfer and forgetting are known before any run, to check the engine's metrics.

- `repeat` (labels: same): one task met again and again. A learner that keeps what it learned
  shows positive forward transfer and no forgetting.
- `repeat` (labels: permuted): the same inputs, the classes relabelled at each meeting. Fine-tuning
  must unlearn the old mapping: the earlier task is forgotten and, on a small budget, the new one
  is learned worse than from scratch (negative transfer against the independent learner).
- `unrelated`: disjoint classes, an input permutation and a head per task. Nothing carries over,
  so forward transfer is zero within seed noise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from lifelong.errors import StreamError
from lifelong.streams.builtin._common import check_examples, dataset_meta, dataset_of, task_rng
from lifelong.streams.registry import DatasetSpec, Recipe, SourceSize, TaskFootprint, stream_builder
from lifelong.streams.task import Task

if TYPE_CHECKING:
    import torch


class RepeatSpec(DatasetSpec):
    """Known answer: one task (a set of classes) met `n_tasks` times. With `labels: permuted` every
    meeting after the first gives the classes other labels (no class keeps its own), so what was
    learned must be unlearned."""

    builder: Literal["repeat"]
    scenario: Literal["domain-il"] = "domain-il"
    classes: list[int] | None = Field(default=None, min_length=2, description="dataset classes; default: all")
    labels: Literal["same", "permuted"] = "same"


class UnrelatedSpec(DatasetSpec):
    """Known answer: disjoint classes per task, each task's inputs under its own pixel permutation,
    a head per task (task-incremental): nothing to transfer."""

    builder: Literal["unrelated"]
    scenario: Literal["task-il"] = "task-il"
    classes_per_task: int = Field(default=2, ge=2)

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        whole = super().task_footprint(source)
        if whole is None:
            return None
        share = self.classes_per_task / source.n_classes
        return TaskFootprint(min(whole.train_rows, math.ceil(source.n_train * share)),
                             min(whole.test_rows, math.ceil(source.n_test * share)), whole.row_bytes)


def _pick(labels: torch.Tensor, classes: list[int], cap: int | None, rng: np.random.Generator) -> torch.Tensor:
    """At most `cap` random indices of examples of `classes`."""
    import torch

    return torch.from_numpy(rng.permutation(np.flatnonzero(np.isin(labels.numpy(), classes)))[:cap])


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of range(n) that moves every element."""
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order


@stream_builder(RepeatSpec)
def repeat(spec: RepeatSpec) -> Recipe:
    """The same examples in every task; labels kept, or relabelled by a fresh derangement per meeting."""
    import torch

    data = dataset_of(spec)
    classes = spec.classes or list(range(data.n_classes))
    if not set(classes) <= set(range(data.n_classes)) or len(set(classes)) != len(classes):
        raise StreamError(f"stream {spec.name!r}: classes {classes} must be distinct classes of {data.name} "
                         f"(0..{data.n_classes - 1})")
    check_examples(spec, data, classes)
    rng = task_rng(spec.seed, 0)
    train, test = _pick(data.y_train, classes, spec.train_per_task, rng), _pick(data.y_test, classes,
                                                                              spec.test_per_task, rng)

    def relabelling(i: int) -> torch.Tensor:
        relabel = torch.arange(data.n_classes)
        if spec.labels == "permuted" and i > 0:
            relabel[classes] = torch.tensor(classes)[_derangement(len(classes), task_rng(spec.seed, i))]
        return relabel

    def mapping(i: int) -> str:
        relabel = relabelling(i)
        return ", ".join(f"{c}->{int(relabel[c])}" for c in classes) if spec.labels == "permuted" else "same"

    def make(i: int) -> Task:
        relabel = relabelling(i)
        return Task(i, names[i], "classification", data.x_train[train], relabel[data.y_train[train]],
                    data.x_test[test], relabel[data.y_test[test]], classes=tuple(classes),
                    meta={"repeat_of": 0, "labels": mapping(i)})

    names = [f"T{i + 1} (labels {mapping(i)})" for i in range(spec.n_tasks)]
    return Recipe(names, make, data.input_shape, data.n_classes, dataset_meta(data))


@stream_builder(UnrelatedSpec)
def unrelated(spec: UnrelatedSpec) -> Recipe:
    """Task i: classes [i*k, (i+1)*k), inputs through task i's own pixel permutation, task label i."""
    import torch

    data = dataset_of(spec)
    k = spec.classes_per_task
    if k * spec.n_tasks > data.n_classes:
        raise StreamError(f"stream {spec.name!r}: {k * spec.n_tasks} distinct classes needed ({spec.n_tasks} tasks "
                         f"x classes_per_task {k}), {data.name} has {data.n_classes}; lower one of them")
    check_examples(spec, data, list(range(k * spec.n_tasks)))
    n_features = math.prod(data.input_shape)

    def make(i: int) -> Task:
        rng = task_rng(spec.seed, i)
        classes = list(range(i * k, (i + 1) * k))
        perm = torch.from_numpy(rng.permutation(n_features))

        def permute(x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, perm].reshape(x.shape)

        train, test = _pick(data.y_train, classes, spec.train_per_task, rng), _pick(data.y_test, classes,
                                                                                  spec.test_per_task, rng)
        return Task(i, names[i], "classification", permute(data.x_train[train]), data.y_train[train],
                    permute(data.x_test[test]), data.y_test[test], classes=tuple(classes), label=i,
                    meta={"classes": classes})

    names = [f"T{i + 1} ({'/'.join(data.class_names[c] for c in range(i * k, (i + 1) * k))}, own permutation)"
             for i in range(spec.n_tasks)]
    return Recipe(names, make, data.input_shape, data.n_classes, dataset_meta(data))
