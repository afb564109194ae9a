"""Stream specs: the YAML a researcher writes to describe a stream, validated by pydantic.

One model per builder, told apart by `builder:`, so a wrong field names the builder it belongs to.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    seed: int = Field(default=0, ge=0, description="stream seed: class order, permutations, subsets")
    n_tasks: int = Field(ge=1, le=100_000)


class _DatasetSpec(_Spec):
    dataset: str = Field(default="digits", description="digits | fashion_mnist | mnist1d | idx")
    data_root: str | None = Field(default=None, description="folder of IDX files (fashion_mnist, idx)")
    train_per_task: int | None = Field(default=None, ge=1, description="cap on training examples per task")
    test_per_task: int | None = Field(default=None, ge=1, description="cap on test examples per task")


class SplitSpec(_DatasetSpec):
    """Disjoint class groups, one per task (Split MNIST and friends)."""

    builder: Literal["split"]
    scenario: Literal["class-il", "task-il"] = "class-il"
    classes_per_task: int | list[int] = Field(default=2, description="one size for all tasks, or one per task")
    class_order: list[int] | Literal["fixed", "shuffled"] = "fixed"

    @model_validator(mode="after")
    def _sizes_match_tasks(self):
        sizes = self.task_sizes
        if len(sizes) != self.n_tasks or min(sizes) < 1:
            raise ValueError(f"classes_per_task {self.classes_per_task} must be a positive number or list "
                             f"of {self.n_tasks} positive numbers (one per task)")
        return self

    @property
    def task_sizes(self) -> list[int]:
        size = self.classes_per_task
        return list(size) if isinstance(size, list) else [size] * self.n_tasks


class PermutedSpec(_DatasetSpec):
    """Every task: all classes, inputs under a fixed random pixel permutation (domain-incremental)."""

    builder: Literal["permuted"]
    scenario: Literal["domain-il"] = "domain-il"
    first_identity: bool = Field(default=False, description="task 1 keeps the original pixel order")


class RotatedSpec(_DatasetSpec):
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


class SinusoidSpec(_Spec):
    """Regression tasks y = A sin(x - phase) (Finn et al. 2017 ranges by default)."""

    builder: Literal["sinusoid"]
    scenario: Literal["domain-il"] = "domain-il"
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    train_per_task: int = Field(default=100, ge=1)
    test_per_task: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _ranges_ordered(self):
        for field in ("amplitude", "phase", "x_range"):
            low, high = getattr(self, field)
            if low > high:
                raise ValueError(f"{field} must be [low, high] with low <= high; got [{low}, {high}]")
        return self


StreamSpec = Annotated[Union[SplitSpec, PermutedSpec, RotatedSpec, SinusoidSpec], Field(discriminator="builder")]
