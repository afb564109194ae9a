"""Turn a validated stream spec into a `Stream` of tasks.

Each task's randomness (subset, permutation, angle, sinusoid) comes from a seed derived from the
stream seed and the task index, so every strategy, seed and resumed run sees the same stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.errors import StreamError
from lifelong.seeding import derive_seed
from lifelong.streams.sources import Dataset, load_dataset
from lifelong.streams import known_answer
from lifelong.streams.spec import (NWayConflictSpec, NWaySpec, PermutedSpec, RepeatSpec, RotatedSpec,
                                   SinusoidFamilySpec, SinusoidSpec, SplitSpec, StreamSpec, UnrelatedSpec)
from lifelong.streams.task import Stream, Task


def build_stream(spec: StreamSpec) -> Stream:
    if isinstance(spec, (SinusoidSpec, SinusoidFamilySpec)):
        return {SinusoidSpec: _sinusoid, SinusoidFamilySpec: _sinusoid_family}[type(spec)](spec)
    data = load_dataset(spec.dataset, data_root=spec.data_root)
    builder = {SplitSpec: _split, PermutedSpec: _permuted, RotatedSpec: _rotated, NWaySpec: _nway,
               NWayConflictSpec: _nway_conflict, RepeatSpec: known_answer.repeat,
               UnrelatedSpec: known_answer.unrelated}[type(spec)]
    tasks = builder(spec, data)
    n_outputs = spec.ways if isinstance(spec, (NWaySpec, NWayConflictSpec)) else data.n_classes
    return Stream(spec.name, spec.scenario, tuple(tasks), tuple(data.x_train.shape[1:]), n_outputs, spec.seed,
                  meta={"dataset": data.name, "class_names": list(data.class_names), "builder": spec.builder})


def _rng(spec, index: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(spec.seed, "task", index))


def _subset(indices: np.ndarray, cap: int | None, rng: np.random.Generator) -> torch.Tensor:
    """At most `cap` of `indices`, in a random order (the order training starts from)."""
    return torch.from_numpy(rng.permutation(indices)[:cap])


def _class_groups(spec: SplitSpec | NWaySpec, sizes: list[int], size_field: str, n_classes: int) -> list[list[int]]:
    """Disjoint groups of `sizes` classes in the spec's class order."""
    if isinstance(spec.class_order, list):
        order = spec.class_order
    elif spec.class_order == "shuffled":
        order = np.random.default_rng(derive_seed(spec.seed, "stream")).permutation(n_classes).tolist()
    else:
        order = list(range(n_classes))
    bounds = np.cumsum([0, *sizes])
    if len(order) < bounds[-1] or len(set(order)) != len(order) or not set(order) <= set(range(n_classes)):
        raise StreamError(f"stream {spec.name!r}: {bounds[-1]} distinct classes needed ({size_field} "
                          f"{getattr(spec, size_field)} over {spec.n_tasks} tasks), the dataset has {n_classes} "
                          f"(class_order {order}); lower n_tasks or {size_field}")
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def _split(spec: SplitSpec, data: Dataset) -> list[Task]:
    tasks = []
    for i, classes in enumerate(_class_groups(spec, spec.task_sizes, "classes_per_task", data.n_classes)):
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
        raise StreamError(f"stream {spec.name!r}: builder rotated needs image data; {data.name} gives vectors. "
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


# --------------------------------------------------------------------------- few-shot segments
# How these tasks store their data, and how episodes are drawn from them: lifelong.streams.episodic.

def _sinusoid_family(spec: SinusoidFamilySpec) -> Stream:
    tasks = []
    for i in range(spec.n_tasks):
        rng = _rng(spec, i)
        amplitude = tuple(bound + i * spec.amplitude_shift for bound in spec.amplitude)
        phase = tuple(bound + i * spec.phase_shift for bound in spec.phase)
        x_train, y_train = _sinusoids(rng, spec.functions_per_task, spec.points_per_function, amplitude, phase,
                                      spec.x_range)
        x_test, y_test = _sinusoids(rng, spec.test_functions, spec.test_points_per_function, amplitude, phase,
                                    spec.x_range)
        name = f"T{i + 1} (A {amplitude[0]:.2f}..{amplitude[1]:.2f}, phase {phase[0]:.2f}..{phase[1]:.2f})"
        tasks.append(Task(i, name, "regression", x_train, y_train, x_test, y_test,
                          meta={"episodic": "family", "points_per_function": spec.points_per_function,
                                "test_points_per_function": spec.test_points_per_function,
                                "amplitude": list(amplitude), "phase": list(phase)}))
    return Stream(spec.name, spec.scenario, tuple(tasks), (1,), 1, spec.seed, meta={"builder": spec.builder})


def _sinusoids(rng: np.random.Generator, n_functions: int, n_points: int, amplitude: tuple[float, float],
               phase: tuple[float, float], x_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_functions` random sinusoids at `n_points` random inputs each, stored flat, function after function."""
    a = rng.uniform(*amplitude, size=(n_functions, 1, 1))
    shift = rng.uniform(*phase, size=(n_functions, 1, 1))
    x = rng.uniform(*x_range, size=(n_functions, n_points, 1))
    y = a * np.sin(x - shift)
    return torch.from_numpy(x.reshape(-1, 1)).float(), torch.from_numpy(y.reshape(-1, 1)).float()


def _per_class(labels: torch.Tensor, classes: list[int], count: int, rng: np.random.Generator,
               spec: NWaySpec | NWayConflictSpec, split: str) -> torch.Tensor:
    """`count` random indices of each class in `labels`, in a random order."""
    labels = labels.numpy()
    picks = []
    for cls in classes:
        members = np.flatnonzero(labels == cls)
        if len(members) < count:
            raise StreamError(f"stream {spec.name!r}: class {cls} has {len(members)} {split} examples, fewer than "
                              f"{split}_per_class={count}; lower {split}_per_class")
        picks.append(rng.choice(members, count, replace=False))
    return torch.from_numpy(rng.permutation(np.concatenate(picks)))


def _nway_task(spec: NWaySpec | NWayConflictSpec, data: Dataset, i: int, classes: list[int], slots: list[int],
               rng: np.random.Generator, episode_labels: str, name: str) -> Task:
    """An N-way segment: class `classes[s]` is stored with label `slots[s]`."""
    train = _per_class(data.y_train, classes, spec.train_per_class, rng, spec, "train")
    test = _per_class(data.y_test, classes, spec.test_per_class, rng, spec, "test")
    relabel = torch.full((data.n_classes,), -1, dtype=torch.long)
    relabel[classes] = torch.tensor(slots)
    return Task(i, name, "classification", data.x_train[train], relabel[data.y_train[train]],
                data.x_test[test], relabel[data.y_test[test]], classes=tuple(range(spec.ways)),
                meta={"episodic": "classes", "dataset_classes": classes, "slots": slots,
                      "episode_labels": episode_labels, "eval_episodes": spec.eval_episodes})


def _nway(spec: NWaySpec, data: Dataset) -> list[Task]:
    groups = _class_groups(spec, [spec.ways] * spec.n_tasks, "ways", data.n_classes)
    return [_nway_task(spec, data, i, classes, list(range(spec.ways)), _rng(spec, i), spec.episode_labels,
                       f"T{i + 1} ({'/'.join(data.class_names[c] for c in classes)})")
            for i, classes in enumerate(groups)]


def _nway_conflict(spec: NWayConflictSpec, data: Dataset) -> list[Task]:
    """Every task: the same classes and the same examples (one seed for all), its own label slots."""
    classes = spec.classes or list(range(spec.ways))
    if not set(classes) <= set(range(data.n_classes)):
        raise StreamError(f"stream {spec.name!r}: classes {classes} are not all among the {data.n_classes} "
                          f"classes of {data.name}")
    names = "/".join(data.class_names[c] for c in classes)
    tasks = []
    for i in range(spec.n_tasks):
        slots = list(range(spec.ways)) if i == 0 else _rng(spec, i).permutation(spec.ways).tolist()
        same_examples = np.random.default_rng(derive_seed(spec.seed, "stream"))
        tasks.append(_nway_task(spec, data, i, classes, slots, same_examples, "fixed",
                                f"T{i + 1} ({names} -> {''.join(map(str, slots))})"))
    return tasks
