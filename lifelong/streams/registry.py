"""Stream builders: where they are found, what they take and what they return.

A builder is one module in `lifelong.streams.builtin` (found there by name, so adding one is a
one-file change): a pydantic spec class with a `builder: Literal["name"]` field, and a function
decorated with `@stream_builder(ThatSpec)` that turns a validated spec into a `Recipe`. The
function checks eagerly everything that can fail (data present, classes enough, counts that
fit), so `lifelong validate` catches it, and builds no task: `Recipe.make(i)` builds task i
from its own derived seed when the run reaches it.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, get_args

from pydantic import BaseModel, ConfigDict, Field

from lifelong.streams.task import Task


class StreamSpecBase(BaseModel):
    """Fields every stream spec has."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    seed: int = Field(default=0, ge=0, description="stream seed: class order, permutations, subsets")
    n_tasks: int = Field(ge=1, le=100_000)

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        """How large one task is at most, for `lifelong.streams.memory` (None: unknown, so the
        stream's tasks are never all kept and its memory estimate counts only the dataset)."""
        return None

    def outside_code(self) -> str | None:
        """A digest of code outside Lifelong that makes this stream's data (a user's factory), so cached
        references are not reused once it changes; None: the builder module alone makes the data."""
        return None


class SourceSpec(StreamSpecBase):
    """A stream cut from a labelled dataset (`lifelong.streams.sources`)."""

    dataset: str = Field(default="digits", description="digits | fashion_mnist | mnist1d | idx")
    data_root: str | None = Field(default=None, description="folder of IDX files (fashion_mnist, idx)")


class DatasetSpec(SourceSpec):
    """A source stream whose tasks take (up to a cap) examples of the dataset."""

    train_per_task: int | None = Field(default=None, ge=1, description="cap on training examples per task")
    test_per_task: int | None = Field(default=None, ge=1, description="cap on test examples per task")

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        """At most the whole dataset per task, less where the caps say so."""
        if source is None:
            return None
        return TaskFootprint(min(self.train_per_task or source.n_train, source.n_train),
                             min(self.test_per_task or source.n_test, source.n_test), source.row_bytes)


@dataclass(frozen=True)
class SourceSize:
    """A dataset's size, known without loading it."""

    n_train: int
    n_test: int
    n_classes: int
    row_bytes: int  # one example: float32 input and int64 label


@dataclass(frozen=True)
class TaskFootprint:
    """Examples in one task's splits and bytes per example."""

    train_rows: int
    test_rows: int
    row_bytes: int


@dataclass(frozen=True)
class Recipe:
    """What a builder returns: the stream's shape and names, and how to build task i."""

    names: list[str]
    make: Callable[[int], Task]
    input_shape: tuple[int, ...]
    n_outputs: int
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Builder:
    spec: type[StreamSpecBase]
    build: Callable[[StreamSpecBase], Recipe]


_BUILDERS: dict[str, Builder] = {}
_LOADED: list[bool] = []


def stream_builder(spec: type[StreamSpecBase]):
    """Register the decorated function as the builder of `spec` (named by its `builder` literal)."""
    (name,) = get_args(spec.model_fields["builder"].annotation)

    def register(build: Callable[[StreamSpecBase], Recipe]):
        if name in _BUILDERS:
            raise ValueError(f"two stream builders are called {name!r}")
        _BUILDERS[name] = Builder(spec, build)
        return build
    return register


def builders() -> dict[str, Builder]:
    """Every builder, by name; the modules of `lifelong.streams.builtin` are imported on first use."""
    if not _LOADED:
        from lifelong.streams import builtin
        for module in pkgutil.iter_modules(builtin.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{builtin.__name__}.{module.name}")
        _LOADED.append(True)
    return _BUILDERS

