"""Domain-incremental streams: every task has all classes, its inputs transformed its own way."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from lifelong.errors import StreamError
from lifelong.seeding import derive_seed
from lifelong.streams.builtin._common import dataset_meta, dataset_of, subset, task_rng
from lifelong.streams.registry import DatasetSpec, Recipe, stream_builder
from lifelong.streams.sources import Dataset
from lifelong.streams.task import Task

if TYPE_CHECKING:
    import torch

    Transform = Callable[[torch.Tensor], torch.Tensor]


class PermutedSpec(DatasetSpec):
    """Every task: all classes, inputs under a fixed random pixel permutation (domain-incremental)."""

    builder: Literal["permuted"]
    scenario: Literal["domain-il"] = "domain-il"
    first_identity: bool = Field(default=False, description="task 1 keeps the original pixel order")


class RotatedSpec(DatasetSpec):
    """Every task: all classes, images rotated by a task-specific angle (domain-incremental)."""

    builder: Literal["rotated"]
    scenario: Literal["domain-il"] = "domain-il"
    angles: list[float] | None = Field(default=None, description="degrees per task; default: U[0, max_angle)")
    max_angle: float = Field(default=180.0, gt=0, le=360)

    @model_validator(mode="after")
    def _angles_match_tasks(self):
        if self.angles is not None and len(self.angles) != self.n_tasks:
            raise ValueError(f"angles lists {len(self.angles)} values but n_tasks is {self.n_tasks}; give one per task")
        return self


def _domain_recipe(spec, data: Dataset, names: list[str], transform: Callable[[int, np.random.Generator], tuple]):
    """Tasks over all classes; task i's inputs go through `transform(i, rng) -> (function, meta)`,
    drawn from task i's generator after its train and test subsets."""

    def make(i: int) -> Task:
        rng = task_rng(spec.seed, i)
        train = subset(np.arange(len(data.y_train)), spec.train_per_task, rng)
        test = subset(np.arange(len(data.y_test)), spec.test_per_task, rng)
        apply, meta = transform(i, rng)
        return Task(i, names[i], "classification", apply(data.x_train[train]), data.y_train[train],
                    apply(data.x_test[test]), data.y_test[test], classes=tuple(range(data.n_classes)), meta=meta)

    return Recipe(names, make, data.input_shape, data.n_classes, dataset_meta(data))


@stream_builder(PermutedSpec)
def permuted(spec: PermutedSpec) -> Recipe:
    import torch

    data = dataset_of(spec)
    n_features = math.prod(data.input_shape)

    def identity(i: int) -> bool:
        return i == 0 and spec.first_identity

    def transform(i: int, rng: np.random.Generator) -> tuple[Transform, dict]:
        perm = torch.arange(n_features) if identity(i) else torch.from_numpy(rng.permutation(n_features))
        return (lambda x: x.flatten(1)[:, perm].reshape(x.shape)), {
            "permutation_seed": derive_seed(spec.seed, "task", i), "identity": identity(i)}

    names = [f"T{i + 1} (" + ("identity" if identity(i) else f"perm {derive_seed(spec.seed, 'task', i) % 10_000:04d}")
             + ")" for i in range(spec.n_tasks)]
    return _domain_recipe(spec, data, names, transform)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (N, C, H, W) images about their centre, bilinear, zero fill."""
    import torch
    import torch.nn.functional as F

    theta = math.radians(degrees)
    affine = torch.tensor([[math.cos(theta), -math.sin(theta), 0.0],
                           [math.sin(theta), math.cos(theta), 0.0]], dtype=images.dtype)
    grid = F.affine_grid(affine.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


@stream_builder(RotatedSpec)
def rotated(spec: RotatedSpec) -> Recipe:
    data = dataset_of(spec)
    if data.x_train.dim() != 4:
        raise StreamError(f"stream {spec.name!r}: builder rotated needs image data; {data.name} gives vectors. "
                         "Use builder: permuted, or an image dataset (digits, fashion_mnist, idx)")

    def angle(i: int, rng: np.random.Generator) -> float:
        return spec.angles[i] if spec.angles is not None else float(rng.uniform(0, spec.max_angle))

    def transform(i: int, rng: np.random.Generator) -> tuple[Transform, dict]:
        degrees = angle(i, rng)
        return (lambda x: rotate(x, degrees)), {"angle": degrees}

    def drawn_angle(i: int) -> float:
        """Task i's angle without building it: replay its generator past the two subsets."""
        rng = task_rng(spec.seed, i)
        rng.permutation(len(data.y_train))
        rng.permutation(len(data.y_test))
        return angle(i, rng)

    names = [f"T{i + 1} ({drawn_angle(i):.0f} deg)" for i in range(spec.n_tasks)]
    return _domain_recipe(spec, data, names, transform)
