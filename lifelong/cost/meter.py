"""The orchestrator's cost accounting: what one task's training and one evaluation cost.

`CostMeter.training(...)` and `.evaluation()` are context managers around the work; the figures
they yield are filled when the block ends and go to the record (a task's line, an evaluation's
line of record.rows.jsonl) and from there to timings.csv, the metrics and the report.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.flop_counter import FlopCounterMode

from lifelong.cost.energy import energy_meter
from lifelong.cost.flops import FlopMeter
from lifelong.cost.memory import TaskPeakMemory
from lifelong.models import build_model

NAN = float("nan")


class CostMeter:
    def __init__(self, level: str, device: torch.device):
        self.level, self.device = level, device
        self.memory = TaskPeakMemory(device)
        self.energy = _energy_meter(str(device), level == "full") if level != "off" else None
        self._pass_flops: dict[int, int] = {}  # training examples -> FLOPs of one pass (same model throughout)
        self._steady_steps: dict = {}  # (loop, step key) -> its FLOPs, once a task's steps of that key agreed

    @contextmanager
    def training(self, strategy, task, ctx):
        """Around `strategy.learn(task)`; yields the task's figures, filled when the block ends:
        peak_memory_mb always; with cost on, train_flops, gradient_steps (optimiser updates),
        samples_seen (training examples of the task in marked steps; NaN when the strategy updated
        outside a marked loop), train_examples, pass_flops (one forward+backward pass of the
        config's model over the task, for computational efficiency), stored_examples,
        model_parameters, energy_j (+ co2_kg from CodeCarbon) and the methods used."""
        figures: dict = {}
        if self.level == "off":
            self.memory.start()
            yield figures
            figures["peak_memory_mb"] = self.memory.stop()
            return
        n = len(task.x_train)
        if n not in self._pass_flops:
            self._pass_flops[n] = pass_flops(ctx, task)
        figures["pass_flops"] = self._pass_flops[n]
        updates = [0]
        hook = register_optimizer_step_post_hook(lambda *_: updates.__setitem__(0, updates[0] + 1))
        flops = FlopMeter(sampled=self.level == "basic", steady=self._steady_steps)
        self.memory.start()
        self.energy.start()
        try:
            with flops.span():
                yield figures
        finally:
            hook.remove()
        energy, co2 = self.energy.stop()
        figures["peak_memory_mb"] = self.memory.stop()
        figures.update(
            train_flops=flops.flops, gradient_steps=updates[0],
            samples_seen=flops.samples if flops.marked_steps >= updates[0] else NAN,
            train_examples=len(task.x_train), stored_examples=int(strategy.stored_examples()),
            model_parameters=int(strategy.model_size()), energy_j=energy, **_co2(co2),
            flops_method=f"FlopCounterMode, {'every step' if self.level == 'full' else 'two steps per shape'}",
            energy_method=self.energy.label, memory_method=self.memory.method)

    @contextmanager
    def evaluation(self):
        """Around one evaluation (a row of R); yields eval_flops, eval_seconds and eval_energy_j."""
        figures: dict = {}
        if self.level == "off":
            yield figures
            return
        flops = FlopMeter(sampled=self.level == "basic")
        self.energy.start()
        started = time.perf_counter()
        with flops.span():
            yield figures
        seconds = time.perf_counter() - started
        energy, co2 = self.energy.stop()
        figures.update(eval_flops=flops.flops, eval_seconds=seconds, eval_energy_j=energy,
                       **_co2(co2, "eval_co2_kg"))


def _co2(kg: float, name: str = "co2_kg") -> dict:
    return {} if math.isnan(kg) else {name: kg}


@lru_cache(maxsize=None)
def _energy_meter(device: str, estimate: bool):
    """One backend per device for the process (CodeCarbon's tracker starts once)."""
    return energy_meter(torch.device(device), estimate)


def pass_flops(ctx, task) -> int:
    """Counted FLOPs of one forward and backward pass of the config's model over the task's training
    examples, on the meta device (shapes only: nothing is computed). Díaz-Rodríguez's Ops↑↓(Tr_i)."""
    stream = ctx.stream
    with torch.device("meta"):
        model = build_model(ctx.model_spec, stream.input_shape, stream.n_outputs)
        x = torch.empty((len(task.x_train), *stream.input_shape))
    with FlopCounterMode(display=False) as mode:
        model(x).sum().backward()
    return mode.get_total_flops()
