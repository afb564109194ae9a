"""The strategy protocol. A new strategy is one small file: subclass `Strategy`, override `learn`.

Lifecycle, driven by the orchestrator: `setup(ctx)` once, then `learn(task)` for each task in
order; between tasks the evaluator calls `predictor(task)` once per `predictor_key(task)` (once
in all, unless the predictor depends on the task: then override `predictor_key`).
`state_dict()`/`load_state_dict()` hold everything needed to resume after a task.
A strategy that cannot serve a stream (its kind, scenario, or too little data for a memory) raises
a `UserError` from `setup`: `lifelong validate` and `lifelong run` set every strategy up before
any training, so the refusal comes first (see `lifelong.strategies.stream_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Hashable

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from lifelong import adapt
from lifelong.evaluation.fewshot import EvaluationSpec, score_and_loss
from lifelong.models import ModelSpec, seeded_model
from lifelong.seeding import derive_seed, generator
from lifelong.streams.task import Stream, Task
from lifelong.training import TrainingSpec, fit, make_optimizer, output_mask, task_loss

Predictor = Callable[[torch.Tensor], torch.Tensor]


class NoParams(BaseModel):
    """Strategies without settings of their own still reject unknown ones."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StrategyContext:
    """What a strategy may know about its world: shapes, budget, device and its seed."""

    stream: Stream
    model_spec: ModelSpec
    training: TrainingSpec
    device: torch.device
    seed: int
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)

    def new_model(self, index: int = 0) -> nn.Module:
        """A fresh backbone; `index` picks among independent initialisations."""
        return seeded_model(self.model_spec, self.stream.input_shape, self.stream.n_outputs,
                            derive_seed(self.seed, "init", index), self.device)

    def shuffle_generator(self, task: Task) -> torch.Generator:
        return generator(self.seed, "shuffle", task.id, device=self.device)

    def mask(self, task: Task) -> torch.Tensor | None:
        return output_mask(task, self.stream.n_outputs, self.device)


class Strategy:
    """Base strategy: one model, fine-tuned on each task in turn (the `naive` behaviour).

    Subclasses set `Params` (a pydantic model of their config `params:`) and override what
    differs. `self.params` is the validated params object.
    """

    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel | dict | None = None):
        self.params = params if isinstance(params, BaseModel) else self.Params(**(params or {}))

    def setup(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.model = ctx.new_model()
        self.optimizer = make_optimizer(self.model.parameters(), ctx.training)

    def learn(self, task: Task) -> dict:
        loss = fit(self.model, self.optimizer, task, self.ctx.training,
                   self.ctx.shuffle_generator(task), self.ctx.mask(task))
        return {"train_loss": loss}

    def predictor(self, task: Task, support: tuple[torch.Tensor, torch.Tensor] | None = None) -> Predictor:
        self.model.eval()
        return self.model

    def predictor_key(self, task: Task) -> Hashable:
        """Equal for tasks whose `predictor(task)` (no support) is the same function.

        The evaluator asks `predictor` once per key and scores all tasks of a key in shared
        batches. The default, one key for every task, holds when `predictor` ignores the task;
        a strategy whose predictor depends on it (a model or head per task) must override this.
        """
        return None

    def adaptation_curve(self, task: Task, support: tuple[torch.Tensor, torch.Tensor], steps: int) -> torch.Tensor:
        """[score, loss] on the task's test set after 0..steps SGD steps on `support`: shape (steps+1, 2).

        The default fine-tunes a functional copy of `self.model` with `evaluation.inner_lr`, so
        non-meta strategies are compared under the same few-shot protocol. It never changes the
        learner. Meta-learners override it with their own adaptation.
        """
        mask = self.ctx.mask(task)
        model = self.predictor(task)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__}.predictor returns no nn.Module, so the default few-shot "
                            "adaptation cannot fine-tune it; override adaptation_curve")
        return adapt.adapt_curve(
            model, adapt.params_of(model, detach=True), *support, task.x_test, task.y_test,
            loss_fn=lambda out, y: task_loss(out, y, task.kind, mask),
            score_fn=lambda out, y: score_and_loss(out, y, task.kind, mask),
            steps=steps, lr=self.ctx.evaluation.inner_lr)

    def adaptation_curves(self, tasks: list[Task], supports: list, steps: int) -> list[torch.Tensor]:
        """`adaptation_curve` for many tasks; override to adapt them all at once (vmap)."""
        return [self.adaptation_curve(task, support, steps) for task, support in zip(tasks, supports)]

    def stored_examples(self) -> int:
        """Training examples the strategy keeps for later tasks (a replay buffer, exemplars); a
        generative strategy counts its generator's parameters. The cost record and Díaz-Rodríguez's
        sample-storage efficiency read it after each task."""
        return 0

    def model_size(self) -> int:
        """Parameters the strategy holds after a task (Díaz-Rodríguez's Mem(θ_i)): by default every
        parameter of its nn.Module attributes, also inside lists and dicts, each counted once."""
        modules = [m for value in vars(self).values() for m in _modules_in(value)]
        unique = {id(p): p for m in modules for p in m.parameters()}
        return sum(p.numel() for p in unique.values())

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def _modules_in(value) -> list[nn.Module]:
    if isinstance(value, nn.Module):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _modules_in(item)]
    return []
