"""Turn a validated stream spec into a `Stream` of tasks.

Each task's randomness (subset, permutation, angle, sinusoid) comes from a seed derived from the
stream seed and the task index, so every strategy, seed and resumed run sees the same stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.seeding import derive_seed
from lifelong.streams.sources import Dataset, load_dataset
from lifelong.streams.spec import PermutedSpec, RotatedSpec, SinusoidSpec, SplitSpec, StreamSpec
from lifelong.streams.task import Stream, Task


def build_stream(spec: StreamSpec) -> Stream:
    if isinstance(spec, SinusoidSpec):
        return _sinusoid(spec)
    data = load_dataset(spec.dataset, data_root=spec.data_root)
    builder = {SplitSpec: _split, PermutedSpec: _permuted, RotatedSpec: _rotated}[type(spec)]
    tasks = builder(spec, data)
    return Stream(spec.name, spec.scenario, tuple(tasks), tuple(data.x_train.shape[1:]), data.n_classes, spec.seed,
                  meta={"dataset": data.name, "class_names": list(data.class_names), "builder": spec.builder})


def _rng(spec, index: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(spec.seed, "task", index))


def _subset(indices: np.ndarray, cap: int | None, rng: np.random.Generator) -> torch.Tensor:
    """At most `cap` of `indices`, in a random order (the order training starts from)."""
    return torch.from_numpy(rng.permutation(indices)[:cap])


def _class_groups(spec: SplitSpec, n_classes: int) -> list[list[int]]:
    if isinstance(spec.class_order, list):
        order = spec.class_order
    elif spec.class_order == "shuffled":
        order = np.random.default_rng(derive_seed(spec.seed, "stream")).permutation(n_classes).tolist()
    else:
        order = list(range(n_classes))
    bounds = np.cumsum([0, *spec.task_sizes])
    if len(order) < bounds[-1] or len(set(order)) != len(order) or not set(order) <= set(range(n_classes)):
        raise ValueError(f"stream {spec.name!r}: {bounds[-1]} distinct classes needed (classes_per_task "
                         f"{spec.classes_per_task} over {spec.n_tasks} tasks), the dataset has {n_classes} "
                         f"(class_order {order}); lower n_tasks or classes_per_task")
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def _split(spec: SplitSpec, data: Dataset) -> list[Task]:
    tasks = []
    for i, classes in enumerate(_class_groups(spec, data.n_classes)):
        rng = _rng(spec, i)
        train = _subset(np.flatnonzero(np.isin(data.y_train.numpy(), classes)), spec.train_per_task, rng)
        test = _subset(np.flatnonzero(np.isin(data.y_test.numpy(), classes)), spec.test_per_task, rng)
        names = "/".join(data.class_names[c] for c in classes)
        tasks.append(Task(i, f"T{i + 1} ({names})", "classification", data.x_train[train], data.y_train[train],
                          data.x_test[test], data.y_test[test], classes=tuple(classes),
                          label=i if spec.scenario == "task-il" else None, meta={"classes": classes}))
    return tasks


def _domain_tasks(spec, data: Dataset, transform, describe) -> list[Task]:
    """Tasks over all classes whose inputs go through a per-task `transform(x, rng)`."""
    tasks = []
    for i in range(spec.n_tasks):
        rng = _rng(spec, i)
        train = _subset(np.arange(len(data.y_train)), spec.train_per_task, rng)
        test = _subset(np.arange(len(data.y_test)), spec.test_per_task, rng)
        apply, meta = transform(i, rng)
        tasks.append(Task(i, f"T{i + 1} ({describe(meta)})", "classification", apply(data.x_train[train]),
                          data.y_train[train], apply(data.x_test[test]), data.y_test[test],
                          classes=tuple(range(data.n_classes)), meta=meta))
    return tasks


def _permuted(spec: PermutedSpec, data: Dataset) -> list[Task]:
    n_features = math.prod(data.x_train.shape[1:])

    def transform(i, rng):
        if i == 0 and spec.first_identity:
            perm = torch.arange(n_features)
        else:
            perm = torch.from_numpy(rng.permutation(n_features))
        return (lambda x: x.flatten(1)[:, perm].reshape(x.shape)), {"permutation_seed": derive_seed(spec.seed, "task", i),
                                                                    "identity": bool(i == 0 and spec.first_identity)}

    return _domain_tasks(spec, data, transform,
                         lambda meta: "identity" if meta["identity"] else f"perm {meta['permutation_seed'] % 10_000:04d}")


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (N, C, H, W) images about their centre, bilinear, zero fill."""
    theta = math.radians(degrees)
    affine = torch.tensor([[math.cos(theta), -math.sin(theta), 0.0],
                           [math.sin(theta), math.cos(theta), 0.0]], dtype=images.dtype)
    grid = F.affine_grid(affine.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def _rotated(spec: RotatedSpec, data: Dataset) -> list[Task]:
    if data.x_train.dim() != 4:
        raise ValueError(f"stream {spec.name!r}: builder rotated needs image data; {data.name} gives vectors. "
                         "Use builder: permuted, or an image dataset (digits, fashion_mnist, idx)")

    def transform(i, rng):
        angle = spec.angles[i] if spec.angles is not None else float(rng.uniform(0, spec.max_angle))
        return (lambda x: rotate(x, angle)), {"angle": angle}

    return _domain_tasks(spec, data, transform, lambda meta: f"{meta['angle']:.0f} deg")


def _sinusoid(spec: SinusoidSpec) -> Stream:
    tasks = []
    for i in range(spec.n_tasks):
        rng = _rng(spec, i)
        amplitude, phase = rng.uniform(*spec.amplitude), rng.uniform(*spec.phase)
        x = torch.from_numpy(rng.uniform(*spec.x_range, size=(spec.train_per_task + spec.test_per_task, 1))).float()
        y = amplitude * torch.sin(x - phase)
        n = spec.train_per_task
        tasks.append(Task(i, f"T{i + 1} (A={amplitude:.2f}, phase={phase:.2f})", "regression",
                          x[:n], y[:n], x[n:], y[n:], meta={"amplitude": amplitude, "phase": phase}))
    return Stream(spec.name, spec.scenario, tuple(tasks), (1,), 1, spec.seed, meta={"builder": "sinusoid"})
