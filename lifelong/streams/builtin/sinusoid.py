"""Generated regression streams: y = A sin(x - phase), one function per task or a family per segment."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from lifelong.streams.builtin._common import task_rng
from lifelong.streams.registry import Recipe, SourceSize, StreamSpecBase, TaskFootprint, stream_builder
from lifelong.streams.task import Task

if TYPE_CHECKING:
    import torch

FLOAT_PAIR_BYTES = 8  # one float32 input and one float32 target


def _check_ordered(spec: BaseModel, fields: tuple[str, ...]) -> None:
    for name in fields:
        low, high = getattr(spec, name)
        if low > high:
            raise ValueError(f"{name} must be [low, high] with low <= high; got [{low}, {high}]")


class SinusoidSpec(StreamSpecBase):
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

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint:
        return TaskFootprint(self.train_per_task, self.test_per_task, FLOAT_PAIR_BYTES)


class SinusoidFamilySpec(StreamSpecBase):
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

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint:
        return TaskFootprint(self.functions_per_task * self.points_per_function,
                             self.test_functions * self.test_points_per_function, FLOAT_PAIR_BYTES)


@stream_builder(SinusoidSpec)
def sinusoid(spec: SinusoidSpec) -> Recipe:
    import torch

    def draw(i: int) -> tuple[np.random.Generator, float, float]:
        rng = task_rng(spec.seed, i)
        return rng, rng.uniform(*spec.amplitude), rng.uniform(*spec.phase)

    def make(i: int) -> Task:
        rng, amplitude, phase = draw(i)
        x = torch.from_numpy(rng.uniform(*spec.x_range, size=(spec.train_per_task + spec.test_per_task, 1))).float()
        y = amplitude * torch.sin(x - phase)
        n = spec.train_per_task
        return Task(i, names[i], "regression", x[:n], y[:n], x[n:], y[n:], meta={"amplitude": amplitude, "phase": phase})

    names = [f"T{i + 1} (A={a:.2f}, phase={p:.2f})" for i in range(spec.n_tasks) for _, a, p in [draw(i)]]
    return Recipe(names, make, (1,), 1)


# How these tasks store their data, and how episodes are drawn from them: lifelong.streams.episodic.
@stream_builder(SinusoidFamilySpec)
def sinusoid_family(spec: SinusoidFamilySpec) -> Recipe:
    def ranges(i: int) -> tuple[tuple[float, float], tuple[float, float]]:
        return (tuple(bound + i * spec.amplitude_shift for bound in spec.amplitude),
                tuple(bound + i * spec.phase_shift for bound in spec.phase))

    def make(i: int) -> Task:
        rng = task_rng(spec.seed, i)
        amplitude, phase = ranges(i)
        x_train, y_train = _sinusoids(rng, spec.functions_per_task, spec.points_per_function, amplitude, phase,
                                      spec.x_range)
        x_test, y_test = _sinusoids(rng, spec.test_functions, spec.test_points_per_function, amplitude, phase,
                                    spec.x_range)
        return Task(i, names[i], "regression", x_train, y_train, x_test, y_test,
                    meta={"episodic": "family", "points_per_function": spec.points_per_function,
                          "test_points_per_function": spec.test_points_per_function,
                          "amplitude": list(amplitude), "phase": list(phase)})

    names = [f"T{i + 1} (A {a[0]:.2f}..{a[1]:.2f}, phase {p[0]:.2f}..{p[1]:.2f})"
             for i in range(spec.n_tasks) for a, p in [ranges(i)]]
    return Recipe(names, make, (1,), 1)


def _sinusoids(rng: np.random.Generator, n_functions: int, n_points: int, amplitude: tuple[float, float],
               phase: tuple[float, float], x_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """`n_functions` random sinusoids at `n_points` random inputs each, stored flat, function after function."""
    import torch

    a = rng.uniform(*amplitude, size=(n_functions, 1, 1))
    shift = rng.uniform(*phase, size=(n_functions, 1, 1))
    x = rng.uniform(*x_range, size=(n_functions, n_points, 1))
    y = a * np.sin(x - shift)
    return torch.from_numpy(x.reshape(-1, 1)).float(), torch.from_numpy(y.reshape(-1, 1)).float()
