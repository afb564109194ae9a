"""Counted FLOPs (torch.utils.flop_counter.FlopCounterMode), never estimated from parameter counts.

Convention: FlopCounterMode's. A multiply-add is 2 FLOPs; matrix products, convolutions and
attention are counted, elementwise work (activations, bias adds, losses, optimiser updates) is not.
Backward passes count the products they compute: for a linear layer 2x its forward (input and
weight gradients), except where no input gradient is needed (the first layer).

A `FlopMeter` counts one span of work (a task's training, one evaluation). Training loops mark
themselves with `loop()` and each step with `step(key, samples)` (`training.fit` and the
meta-learners' loops do). Under `full` every operation of the span runs under FlopCounterMode, which
makes small-batch training several times slower. Under `basic` (`sampled=True`) the span runs under
it except inside marked loops, where the steps of each `key` in each loop are counted until two
consecutive ones agree, and the others are counted as copies of the last (in a later task of the
lifetime, the first step alone when it matches the steady count of that loop and key in an earlier
task; loops are told apart by their order in the span). Within one loop, `key` should fix the step's
work (the batch size, the episode shapes): then the product is the same number as the full count
(tests/unit/test_cost.py checks it on naive, replay, EWC, MAML, FTML, MER, La-MAML, iCaRL and
generative replay, whose solver and generator loops have steps of one batch size but not one work).
A key whose work changes from step to step (a buffer growing inside the task) is counted until it
settles.

`probing(callback)` calls `callback(samples)` after each marked step of the block, with counting
suspended: the orchestrator scores the task being learned there (`evaluation.within_task_every`),
reading `counted_so_far()` for the FLOPs spent up to that step.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Hashable

from torch.utils.flop_counter import FlopCounterMode

_meter: FlopMeter | None = None  # the meter of the span being counted; None outside any
_probe: Callable[[int], None] | None = None  # called after each marked step (see probing)
_NOTHING = nullcontext()


@dataclass
class _KeyCounts:
    """The steps of one key: those counted and those taken as copies of the last counted one."""

    last: int  # FLOPs of the key's last counted step
    counted: int  # FLOPs of all its counted steps
    steps: int = 1  # steps counted
    copies: int = 0  # steps taken as copies of the last counted one
    steady: bool = False  # two consecutive steps agreed (or the first matched an earlier task's count)

    @property
    def flops(self) -> int:
        return self.counted + self.last * self.copies


class _GlobalOnly:
    """The part of ModuleTracker that FlopCounterMode reads, without its hooks: a per-module breakdown
    is never used here, and tracking modules registers hooks on every module call (measured: most of
    a counted MLP step's overhead)."""

    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *args) -> None:
        pass


def counting_mode() -> FlopCounterMode:
    """A FlopCounterMode that counts the total only."""
    mode = FlopCounterMode(display=False)
    if hasattr(mode, "mod_tracker"):
        mode.mod_tracker = _GlobalOnly()
    return mode


class FlopMeter:
    def __init__(self, sampled: bool, steady: dict[Hashable, int] | None = None):
        """`steady`: per key, the FLOPs of a step in earlier spans whose steps all agreed (kept by the
        caller across a lifetime's tasks, and updated here): a first step that matches it is taken as
        steady at once, so most tasks count one step per key, not two."""
        self.sampled = sampled
        self.flops = self.marked_steps = self.samples = 0
        self._mode: FlopCounterMode | None = None
        self._per_key: dict[tuple[int, Hashable], _KeyCounts] = {}  # (loop, key) -> its steps
        self._steady = {} if steady is None else steady
        self._loops = 0  # loops entered in the span
        self._loop: int | None = None  # the loop being run (its order in the span)

    @contextmanager
    def span(self):
        """Count the block's FLOPs (and marked steps and samples) into this meter."""
        global _meter
        if _meter is not None:
            raise RuntimeError("FLOP counting spans do not nest")
        self.flops = self.marked_steps = self.samples = self._loops = 0
        self._per_key = {}
        _meter = self
        self._open()
        try:
            yield self
        finally:
            self._close()
            _meter = None
            self.flops += sum(counts.flops for counts in self._per_key.values())

    def _open(self) -> None:
        self._mode = counting_mode()
        self._mode.__enter__()

    def _close(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops += self._mode.get_total_flops()
            self._mode = None

    def so_far(self) -> int:
        """FLOPs counted since the span began (steps taken as copies included)."""
        open_mode = self._mode.get_total_flops() if self._mode is not None else 0
        return self.flops + open_mode + sum(counts.flops for counts in self._per_key.values())

    @contextmanager
    def _pause(self):
        self._close()
        try:
            yield
        finally:
            self._open()

    @contextmanager
    def _in_loop(self):
        """A marked loop: its steps are counted apart from other loops' (see `loop`)."""
        outer, self._loops = self._loop, self._loops + 1
        self._loop = self._loops
        try:
            with self._pause() if self._mode is not None else _NOTHING:  # a nested loop: already paused
                yield
        finally:
            self._loop = outer

    @contextmanager
    def _sampled_step(self, key: Hashable):
        key = (self._loop, key)
        counts = self._per_key.get(key)
        if counts is not None and counts.steady:
            counts.copies += 1
            yield
            return
        with counting_mode() as mode:
            yield
        flops = mode.get_total_flops()
        if counts is None:
            self._per_key[key] = _KeyCounts(flops, flops, steady=self._steady.get(key) == flops)
            return
        counts.steady = flops == counts.last
        counts.last = flops
        counts.counted += flops
        counts.steps += 1
        if counts.steady:
            self._steady[key] = flops


def loop():
    """Mark a training loop: under `basic`, its steps are counted until each key's work settles."""
    meter = _meter
    if meter is None or not meter.sampled:
        return _NOTHING
    return meter._in_loop()


def step(key: Hashable, samples: int):
    """Mark one training step whose work `key` fixes, on `samples` training examples of the task."""
    meter, counting = _meter, _NOTHING
    if meter is not None:
        meter.marked_steps += 1
        meter.samples += samples
        if meter._mode is None:  # else full, or a step outside a marked loop: the span's mode counts it
            counting = meter._sampled_step(key)
    return counting if _probe is None else _then_probe(counting, samples)


def repeated(key: Hashable):
    """Mark one round of work inside `loop()` that is not a training step but repeats, its work fixed
    by `key` (a greedy selection's rounds, chunked forward passes): under `basic` it is counted as
    steps are (until two consecutive rounds of the key agree, then copies), without counting as a
    training step. Outside `loop()` the span counts it in full."""
    meter = _meter
    if meter is None or meter._mode is not None:  # nothing to count, or every operation is counted
        return _NOTHING
    return meter._sampled_step(key)


@contextmanager
def _then_probe(counting, samples: int):
    with counting:
        yield
    with uncounted():
        _probe(samples)


@contextmanager
def probing(callback: Callable[[int], None]):
    """Call `callback(samples)` after every marked training step of the block, uncounted."""
    global _probe
    _probe = callback
    try:
        yield
    finally:
        _probe = None


def uncounted():
    """A block whose work is not counted into the current span (a probe evaluation)."""
    meter = _meter
    return _NOTHING if meter is None or meter._mode is None else meter._pause()


def counted_so_far() -> float:
    """FLOPs of the current span so far; NaN when nothing is being counted (`cost: off`)."""
    return float("nan") if _meter is None else float(_meter.so_far())


def episode_shapes(episodes) -> tuple:
    """The key of a meta-learning step: the shapes of its (x_support, y_support, x_query, y_query)."""
    return tuple(tuple(part.shape) for part in episodes)


def episode_examples(episodes) -> int:
    """Examples in a meta-batch of episodes: support and query, (episodes, examples, ...) each."""
    x_support, _, x_query, _ = episodes
    return x_support.shape[0] * x_support.shape[1] + x_query.shape[0] * x_query.shape[1]
