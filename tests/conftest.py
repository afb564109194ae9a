"""Tiny fixtures: streams small enough that a whole lifetime trains in well under a second."""

from __future__ import annotations

import pytest
import torch

from lifelong.models import ModelSpec
from lifelong.strategies.base import StrategyContext
from lifelong.streams.task import Stream, Task
from lifelong.training import TrainingSpec


def blob_stream(n_tasks: int = 3, classes_per_task: int = 2, scenario: str = "class-il", n_per_class: int = 40,
                dim: int = 8, seed: int = 0) -> Stream:
    """Gaussian blobs, one well-separated centre per class; task i holds classes 2i, 2i+1."""
    g = torch.Generator().manual_seed(seed)
    n_classes = n_tasks * classes_per_task
    centres = 3 * torch.randn(n_classes, dim, generator=g)
    tasks = []
    for i in range(n_tasks):
        classes = tuple(range(i * classes_per_task, (i + 1) * classes_per_task))
        y = torch.tensor(classes).repeat_interleave(n_per_class)
        x_train = centres[y] + torch.randn(len(y), dim, generator=g)
        x_test = centres[y] + torch.randn(len(y), dim, generator=g)
        tasks.append(Task(i, f"T{i + 1}", "classification", x_train, y, x_test, y.clone(), classes=classes,
                          label=i if scenario == "task-il" else None))
    return Stream("blobs", scenario, tuple(tasks), (dim,), n_classes, seed)


def context(stream: Stream, seed: int = 0, **training) -> StrategyContext:
    spec = TrainingSpec(**{"epochs": 3, "batch_size": 16, "lr": 0.1, **training})
    return StrategyContext(stream, ModelSpec(hidden=[32]), spec, torch.device("cpu"), seed)


@pytest.fixture
def blobs() -> Stream:
    return blob_stream()


def linear_domain_stream(n_tasks: int = 3, dim: int = 8, n: int = 120, seed: int = 0) -> Stream:
    """Domain-incremental: every task labels random inputs by the sign of its own linear map.

    The same two outputs mean different things in each task, so fine-tuning interferes.
    """
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for i in range(n_tasks):
        w = torch.randn(dim, generator=g)
        x, x_test = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
        tasks.append(Task(i, f"T{i + 1}", "classification", x, (x @ w > 0).long(), x_test,
                          (x_test @ w > 0).long(), classes=(0, 1)))
    return Stream("linear", "domain-il", tuple(tasks), (dim,), 2, seed)
