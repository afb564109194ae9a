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


class _SourceSpec(_Spec):
    dataset: str = Field(default="digits", description="digits | fashion_mnist | mnist1d | idx")
    data_root: str | None = Field(default=None, description="folder of IDX files (fashion_mnist, idx)")


class _DatasetSpec(_SourceSpec):
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


def _check_ordered(spec: BaseModel, fields: tuple[str, ...]) -> None:
    for field in fields:
        low, high = getattr(spec, field)
        if low > high:
            raise ValueError(f"{field} must be [low, high] with low <= high; got [{low}, {high}]")


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
        _check_ordered(self, ("amplitude", "phase", "x_range"))
        return self


class SinusoidFamilySpec(_Spec):
    """Few-shot segments of the sinusoid family y = A sin(x - phase) (Finn et al. 2017).

    Each task of the stream is a distribution of functions, not one function: segment i draws
    A from `amplitude` + i * `amplitude_shift` and the phase from `phase` + i * `phase_shift`,
    so the family drifts across the lifetime. A segment stores `functions_per_task` training
    functions (meta-training episodes are drawn from them) and `test_functions` held-out ones
    (few-shot evaluation adapts to each and averages); see `lifelong.streams.episodic`.
    """

    builder: Literal["sinusoid_family"]
    scenario: Literal["few-shot"] = "few-shot"
    amplitude: tuple[float, float] = (0.1, 5.0)
    amplitude_shift: float = Field(default=0.0, description="added to both amplitude bounds per segment")
    phase: tuple[float, float] = (0.0, math.pi)
    phase_shift: float = Field(default=0.0, description="added to both phase bounds per segment")
    x_range: tuple[float, float] = (-5.0, 5.0)
    functions_per_task: int = Field(default=1000, ge=1, description="training functions per segment")
    points_per_function: int = Field(default=20, ge=2, description="points of each training function")
    test_functions: int = Field(default=100, ge=1, description="held-out functions per segment")
    test_points_per_function: int = Field(default=110, ge=2,
                                          description="points of each held-out function: the support "
                                                      "is drawn from them, the rest is the query")

    @model_validator(mode="after")
    def _ranges_ordered(self):
        _check_ordered(self, ("amplitude", "phase", "x_range"))
        return self


class _NWaySpec(_SourceSpec):
    scenario: Literal["few-shot"] = "few-shot"
    ways: int = Field(default=5, ge=2, description="classes per segment (N of N-way)")
    train_per_class: int = Field(default=100, ge=1, description="training examples kept per class")
    test_per_class: int = Field(default=40, ge=1, description="test examples kept per class (the query)")
    eval_episodes: int = Field(default=10, ge=1, description="held-out episodes averaged per evaluation")


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


class RepeatSpec(_DatasetSpec):
    """Known answer: one task (a set of classes) met `n_tasks` times. With `labels: permuted` every
    meeting after the first gives the classes other labels (no class keeps its own), so what was
    learned must be unlearned. Builder: lifelong.streams.known_answer."""

    builder: Literal["repeat"]
    scenario: Literal["domain-il"] = "domain-il"
    classes: list[int] | None = Field(default=None, min_length=2, description="dataset classes; default: all")
    labels: Literal["same", "permuted"] = "same"


class UnrelatedSpec(_DatasetSpec):
    """Known answer: disjoint classes per task, each task's inputs under its own pixel permutation,
    a head per task (task-incremental): nothing to transfer. Builder: lifelong.streams.known_answer."""

    builder: Literal["unrelated"]
    scenario: Literal["task-il"] = "task-il"
    classes_per_task: int = Field(default=2, ge=2)


StreamSpec = Annotated[Union[SplitSpec, PermutedSpec, RotatedSpec, SinusoidSpec, SinusoidFamilySpec, NWaySpec,
                             NWayConflictSpec, RepeatSpec, UnrelatedSpec], Field(discriminator="builder")]
