"""What several builders share: per-task random generators, subsets, class groups, count checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lifelong.errors import StreamError
from lifelong.seeding import derive_seed
from lifelong.streams.registry import SourceSpec
from lifelong.streams.sources import Dataset, load_dataset

if TYPE_CHECKING:
    import torch


def task_rng(seed: int, index: int) -> np.random.Generator:
    """Task `index`'s own generator: its content never depends on other tasks."""
    return np.random.default_rng(derive_seed(seed, "task", index))


def dataset_of(spec: SourceSpec) -> Dataset:
    return load_dataset(spec.dataset, data_root=spec.data_root)


def dataset_meta(data: Dataset) -> dict:
    return {"dataset": data.name, "class_names": list(data.class_names)}


def subset(indices: np.ndarray, cap: int | None, rng: np.random.Generator) -> torch.Tensor:
    """At most `cap` of `indices`, in a random order (the order training starts from)."""
    import torch

    return torch.from_numpy(rng.permutation(indices)[:cap])


def class_groups(spec, sizes: list[int], size_field: str, n_classes: int) -> list[list[int]]:
    """Disjoint groups of `sizes` classes in the spec's `class_order`."""
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


def check_examples(spec, data: Dataset, classes: list[int], need_train: int = 1, need_test: int = 1,
                   fix: str = "choose classes that have examples") -> None:
    """Fail at build time, naming the class, when the dataset has too few examples of one of `classes`."""
    import torch

    for split, labels, need in (("train", data.y_train, need_train), ("test", data.y_test, need_test)):
        counts = torch.bincount(labels, minlength=data.n_classes)
        for cls in classes:
            if int(counts[cls]) < need:
                raise StreamError(f"stream {spec.name!r}: class {cls} has {int(counts[cls])} {split} examples in "
                                 f"{data.name}, fewer than the {need} needed; {fix}")
