"""Avalanche: a stream made by the user's function returning an Avalanche benchmark (the `avalanche` extra).

    stream: {builder: avalanche, name: smnist, factory: "my_module:make_benchmark", args: {n_experiences: 5}}

The factory is imported like a user's strategy (`package.module:function`, the run's folder on the
path) and called with `args`, the global random generators seeded from the stream seed. Validating
the spec calls it once per process and reads the benchmark's experiences, so `n_tasks` and the
scenario (class-il, task-il or domain-il; see `lifelong.interop.avalanche.streams`) come from the
benchmark; a stated one is kept (`n_tasks` checked).
Nothing here imports avalanche until a spec is validated.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from lifelong.interop.avalanche import require
from lifelong.seeding import derive_seed
from lifelong.streams.registry import Recipe, SourceSize, StreamSpecBase, TaskFootprint, stream_builder
from lifelong.user_code import import_reference

if TYPE_CHECKING:
    from lifelong.interop.avalanche.streams import Layout

_LAYOUTS: dict[tuple[str, str, int], Layout] = {}  # (factory, args, seed) -> the benchmark read, once per process


class AvalancheSpec(StreamSpecBase):
    """An Avalanche benchmark made by `factory(**args)`, experience i of its train and test streams as task i."""

    builder: Literal["avalanche"]
    factory: str = Field(description="'package.module:function' returning an Avalanche benchmark")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the factory")
    scenario: Literal["auto", "class-il", "task-il", "domain-il"] = Field(
        default="auto", description="auto: task-il when experiences have different task labels, class-il when "
                                    "their classes are disjoint, else domain-il")
    n_tasks: int | None = Field(default=None, ge=1, description="read from the benchmark; if given, checked")
    n_outputs: int | None = Field(default=None, ge=1, description="the model's outputs; default the largest "
                                                                 "class id + 1")

    @field_validator("factory")
    @classmethod
    def _names_a_function(cls, factory: str) -> str:
        module, _, function = factory.partition(":")
        if not module or not function:
            raise ValueError(f"factory {factory!r} must name a function as 'package.module:function'")
        return factory

    @model_validator(mode="after")
    def _read_benchmark(self):
        layout = self.layout()
        found = len(layout.experiences)
        if self.n_tasks is not None and self.n_tasks != found:
            raise ValueError(f"n_tasks is {self.n_tasks} but the benchmark of {self.factory!r} has {found} train "
                             f"experiences; give n_tasks: {found} or leave it out")
        self.n_tasks = found
        self.scenario = layout.scenario(self.scenario)
        layout.outputs(self.n_outputs)
        return self

    def layout(self) -> Layout:
        """The benchmark `factory(**args)` returns, read (made once per process, arguments and seed)."""
        key = (self.factory, json.dumps(self.args, sort_keys=True, default=repr), self.seed)
        if key not in _LAYOUTS:
            require("the 'avalanche' stream builder")
            from lifelong.interop.avalanche.streams import read_benchmark

            factory = import_reference(self.factory, "stream factory", ValueError)
            if not callable(factory):
                raise ValueError(f"factory {self.factory!r} is a {type(factory).__name__}, not a function")
            try:
                with seeded_globals(derive_seed(self.seed, "stream")):
                    benchmark = factory(**self.args)
            except Exception as error:  # the user's code: say which call failed and with what
                raise ValueError(f"factory {self.factory!r} called with args {self.args} failed: "
                                 f"{type(error).__name__}: {error}") from error
            try:
                _LAYOUTS[key] = read_benchmark(benchmark)
            except ValueError as error:
                raise ValueError(f"factory {self.factory!r}: {error}") from None
        return _LAYOUTS[key]

    def task_footprint(self, source: SourceSize | None) -> TaskFootprint | None:
        """The largest experience's train and test examples."""
        return self.layout().footprint()

    def outside_code(self) -> str:
        """The factory's module, the conversion and the avalanche version: what makes the data besides Lifelong."""
        import avalanche

        from lifelong.interop.avalanche import streams

        digest = hashlib.sha256(f"{self.factory}\0{avalanche.__version__}\0".encode())
        for module in (sys.modules[self.factory.partition(":")[0]], streams):
            path = getattr(module, "__file__", None)
            digest.update(Path(path).read_bytes() if path else module.__name__.encode())
        return digest.hexdigest()[:20]


@contextmanager
def seeded_globals(seed: int):
    """torch's, numpy's and Python's global generators seeded for the factory's call, restored after: a factory
    that draws a class order unseeded (class_incremental_benchmark's default) makes the same benchmark in a
    resumed run and in every sweep worker."""
    import torch

    state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(numpy_state)


@stream_builder(AvalancheSpec)
def avalanche(spec: AvalancheSpec) -> Recipe:
    return spec.layout().recipe(spec.scenario, spec.n_outputs)
