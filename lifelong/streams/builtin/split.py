"""Split: disjoint class groups, one per task (Split MNIST and friends)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from lifelong.streams.builtin._common import check_examples, class_groups, dataset_meta, dataset_of, subset, task_rng
from lifelong.streams.registry import DatasetSpec, Recipe, SourceSize, TaskFootprint, stream_builder
from lifelong.streams.task import Task


class SplitSpec(DatasetSpec):
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

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        """The largest group's share of the dataset, capped as the spec says."""
        whole = super().task_footprint(source)
        if whole is None:
            return None
        share = max(self.task_sizes) / source.n_classes
        return TaskFootprint(min(whole.train_rows, math.ceil(source.n_train * share)),
                             min(whole.test_rows, math.ceil(source.n_test * share)), whole.row_bytes)


@stream_builder(SplitSpec)
def split(spec: SplitSpec) -> Recipe:
    data = dataset_of(spec)
    groups = class_groups(spec, spec.task_sizes, "classes_per_task", data.n_classes)
    check_examples(spec, data, [c for group in groups for c in group])
    y_train, y_test = data.y_train.numpy(), data.y_test.numpy()

    def make(i: int) -> Task:
        classes, rng = groups[i], task_rng(spec.seed, i)
        train = subset(np.flatnonzero(np.isin(y_train, classes)), spec.train_per_task, rng)
        test = subset(np.flatnonzero(np.isin(y_test, classes)), spec.test_per_task, rng)
        return Task(i, names[i], "classification", data.x_train[train], data.y_train[train],
                    data.x_test[test], data.y_test[test], classes=tuple(classes),
                    label=i if spec.scenario == "task-il" else None, meta={"classes": classes})

    names = [f"T{i + 1} ({'/'.join(data.class_names[c] for c in classes)})" for i, classes in enumerate(groups)]
    return Recipe(names, make, data.input_shape, data.n_classes, dataset_meta(data))
