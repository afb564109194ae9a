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

import numpy as np
import torch

from lifelong.errors import StreamError
from lifelong.seeding import derive_seed
from lifelong.streams.sources import Dataset
from lifelong.streams.spec import RepeatSpec, UnrelatedSpec
from lifelong.streams.task import Task


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, "task", index))


def _pick(labels: torch.Tensor, classes: list[int], cap: int | None, rng: np.random.Generator) -> torch.Tensor:
    """At most `cap` random indices of examples of `classes`."""
    return torch.from_numpy(rng.permutation(np.flatnonzero(np.isin(labels.numpy(), classes)))[:cap])


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of range(n) that moves every element."""
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order


def repeat(spec: RepeatSpec, data: Dataset) -> list[Task]:
    """The same examples in every task; labels kept, or relabelled by a fresh derangement per meeting."""
    classes = spec.classes or list(range(data.n_classes))
    if not set(classes) <= set(range(data.n_classes)) or len(set(classes)) != len(classes):
        raise StreamError(f"stream {spec.name!r}: classes {classes} must be distinct classes of {data.name} "
                          f"(0..{data.n_classes - 1})")
    rng = _rng(spec.seed, 0)
    train, test = _pick(data.y_train, classes, spec.train_per_task, rng), _pick(data.y_test, classes,
                                                                              spec.test_per_task, rng)
    tasks = []
    for i in range(spec.n_tasks):
        relabel = torch.arange(data.n_classes)
        if spec.labels == "permuted" and i > 0:
            relabel[classes] = torch.tensor(classes)[_derangement(len(classes), _rng(spec.seed, i))]
        mapping = ", ".join(f"{c}->{int(relabel[c])}" for c in classes) if spec.labels == "permuted" else "same"
        tasks.append(Task(i, f"T{i + 1} (labels {mapping})", "classification", data.x_train[train],
                          relabel[data.y_train[train]], data.x_test[test], relabel[data.y_test[test]],
                          classes=tuple(classes), meta={"repeat_of": 0, "labels": mapping}))
    return tasks


def unrelated(spec: UnrelatedSpec, data: Dataset) -> list[Task]:
    """Task i: classes [i*k, (i+1)*k), inputs through task i's own pixel permutation, task label i."""
    k = spec.classes_per_task
    if k * spec.n_tasks > data.n_classes:
        raise StreamError(f"stream {spec.name!r}: {k * spec.n_tasks} distinct classes needed ({spec.n_tasks} tasks "
                          f"x classes_per_task {k}), {data.name} has {data.n_classes}; lower one of them")
    n_features = int(np.prod(data.x_train.shape[1:]))
    tasks = []
    for i in range(spec.n_tasks):
        rng = _rng(spec.seed, i)
        classes = list(range(i * k, (i + 1) * k))
        perm = torch.from_numpy(rng.permutation(n_features))

        def permute(x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, perm].reshape(x.shape)

        train, test = _pick(data.y_train, classes, spec.train_per_task, rng), _pick(data.y_test, classes,
                                                                                  spec.test_per_task, rng)
        tasks.append(Task(i, f"T{i + 1} ({'/'.join(data.class_names[c] for c in classes)}, own permutation)",
                          "classification", permute(data.x_train[train]), data.y_train[train],
                          permute(data.x_test[test]), data.y_test[test], classes=tuple(classes), label=i,
                          meta={"classes": classes}))
    return tasks
