"""What the gradient-based meta-learners share: the episodic meta-training loop of a lifelong
stream and their few-shot adaptation. MAML, FOMAML, ANIL, Meta-SGD and Reptile are small
subclasses that vary the inner loop (which parameters, which step sizes, which order) or the
outer update; the functional machinery is `lifelong.adapt`.

The protocol:

- `learn(task)` runs `meta_steps` meta-iterations, each on `meta_batch` episodes drawn from the
  task's training data (`lifelong.streams.episodic`): for a family segment an episode is one of
  its functions, for an N-way segment its classes dealt to the outputs; for a plain task, a
  support/query split of its data. The `training:` section of a config does not apply: the
  budget is `meta_steps` x `meta_batch` episodes, the outer optimiser is the learner's own.
- Few-shot evaluation adapts a copy of the meta-parameters on the task's support set, with the
  learner's own inner step sizes and on its own adapted parameters, for the number of steps the
  config's `evaluation:` asks, and scores every step. The learner is never changed. Tasks whose
  support and query shapes (and output mask) agree are adapted together under `vmap`.

Device: episodes are drawn on the device by a seeded generator; the meta-losses of a task are
summed on the device and checked once, at the end of the task, so meta-training never waits
for the host.

Mixed precision (`amp: bfloat16`, off by default): meta-training's forward passes, the inner
loop's included, run under `torch.autocast`; parameters, optimiser state and the inner steps'
updates stay float32, and few-shot evaluation always runs in float32, so recorded numbers do
not depend on the setting. Only bfloat16 is offered: float16 needs loss scaling, and the inner
gradients never pass through a `GradScaler` (they come from `autograd.grad` inside the forward
pass), so they would underflow silently. bfloat16 has float32's exponent range but an 8-bit
mantissa: second-order MAML differentiates through the inner gradients computed at that
precision, which is why it is off by default.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from lifelong import adapt
from lifelong.cost import flops
from lifelong.evaluation.fewshot import score_and_loss
from lifelong.seeding import generator
from lifelong.strategies.base import Predictor, Strategy, StrategyContext
from lifelong.streams.episodic import Episodes, episode_sampler
from lifelong.streams.task import Stream, Task
from lifelong.training import task_loss


class MetaParams(BaseModel):
    """Settings every gradient-based meta-learner has."""

    model_config = ConfigDict(extra="forbid")

    inner_lr: float = Field(default=0.01, gt=0, le=10,
                            description="inner SGD step size, in meta-training and few-shot evaluation")
    inner_steps: int = Field(default=1, ge=1, le=1_000, description="inner SGD steps per episode in meta-training")
    meta_batch: int = Field(default=25, ge=1, le=100_000, description="episodes per meta-iteration")
    meta_steps: int = Field(default=100, ge=1, le=10_000_000, description="meta-iterations per task of the stream")
    shots: int = Field(default=10, ge=1, description="support examples per class (per function) of an episode")
    amp: Literal["off", "bfloat16"] = Field(
        default="off", description="autocast meta-training's forward passes (inner loop included) to bfloat16; "
                                   "evaluation stays float32")


class QueryMetaParams(MetaParams):
    """...for learners that score the adapted parameters on a query set and step Adam on that loss."""

    queries: int = Field(default=10, ge=1, description="query examples per class (per function) of an episode")
    meta_lr: float = Field(default=1e-3, gt=0, le=10, description="Adam step size of the outer loop")


class MetaLearner(Strategy):
    """The episodic meta-training loop and the few-shot adaptation; MAML's outer update by default.

    Subclasses override what differs: `network`, `first_order`, `adapt_keys` (which parameters adapt),
    `inner_lrs` (per-parameter step sizes), `meta_step` and `outer_optimizer` (the outer
    update), `episode_sizes`.
    """

    Params = QueryMetaParams
    OUTER_LR: ClassVar[str] = "meta_lr"  # the setting that scales the outer update (for error messages)

    def setup(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.model = self.network(ctx.new_model())
        adapt.assert_vmap_safe(self.model)
        self._check_episodes(ctx.stream)
        self.optimizer = self.outer_optimizer()

    # -- what the subclasses vary

    def network(self, backbone: nn.Module) -> nn.Module:
        """The meta-learned network, made from the configured backbone (`naive`'s initial weights): itself."""
        return backbone

    def outer_optimizer(self) -> torch.optim.Optimizer:
        """Steps the meta-parameters with the meta-gradient: Adam with `params.meta_lr`.

        Fused: one kernel for all parameters, which matters when a vmapped meta-iteration of a
        small network takes a few milliseconds (measured: 3.6 -> 2.6 ms per FOMAML iteration of
        the Finn et al. sinusoid setup on one CPU thread).
        """
        return torch.optim.Adam(self.model.parameters(), lr=self.params.meta_lr, fused=True)

    @property
    def first_order(self) -> bool:
        return False

    def adapt_keys(self) -> list[str] | None:
        """Names of the parameters the inner loop adapts; None: all of them."""
        return None

    def inner_lrs(self) -> dict[str, Tensor] | None:
        """Per-parameter inner step sizes; None: `params.inner_lr` for all."""
        return None

    def episode_sizes(self) -> tuple[int, int]:
        """(support, query) examples per class, or points per function, of a training episode."""
        return self.params.shots, self.params.queries

    def meta_step(self, episodes: Episodes, loss_fn: adapt.LossFn) -> Tensor:
        """One outer update on a meta-batch of episodes; returns its loss, left on the device.

        MAML: the mean query loss after adapting on each support set (vmapped over episodes),
        backpropagated through the inner loop (second order unless `first_order`).
        """
        with self.autocast():
            loss = adapt.meta_loss(self.model, adapt.params_of(self.model), *episodes, loss_fn=loss_fn,
                                   first_order=self.first_order, **self._inner_loop()).float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    # -- meta-training

    def autocast(self) -> AbstractContextManager:
        """Where meta-training's forward passes run: bfloat16 autocast under `amp`, else a no-op."""
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.params.amp == "bfloat16")

    def learn(self, task: Task) -> dict:
        sample = episode_sampler(task, *self.episode_sizes(), type(self).__name__)
        draw = generator(self.ctx.seed, "episode", task.id, device=self.ctx.device)
        loss_fn = self._loss_fn(task)
        total = torch.zeros((), device=self.ctx.device)
        with flops.loop():
            for _ in range(self.params.meta_steps):
                episodes = sample(self.params.meta_batch, draw)
                with flops.step(flops.episode_shapes(episodes), flops.episode_examples(episodes)):
                    total += self.meta_step(episodes, loss_fn).detach()
        mean = total / self.params.meta_steps
        adapt.check_finite(mean, f"meta-training loss on task {task.name!r}", fix=self._non_finite_fix())
        return {"meta_loss": float(mean)}

    def _check_episodes(self, stream: Stream) -> None:
        """Fail before any training when some task cannot give the episodes the params ask for."""
        for task in stream.tasks:
            episode_sampler(task, *self.episode_sizes(), type(self).__name__)

    def _inner_loop(self, steps: int | None = None) -> dict:
        """The inner-loop settings as `lifelong.adapt` takes them."""
        return {"steps": self.params.inner_steps if steps is None else steps, "lr": self.params.inner_lr,
                "adapt_keys": self.adapt_keys(), "per_param_lr": self.inner_lrs()}

    def _loss_fn(self, task: Task) -> adapt.LossFn:
        mask = self.ctx.mask(task)
        return lambda outputs, targets: task_loss(outputs, targets, task.kind, mask)

    def _non_finite_fix(self) -> str:
        p = self.params
        return (f"lower params.inner_lr (now {p.inner_lr}) or params.{self.OUTER_LR} (now "
                f"{getattr(p, self.OUTER_LR)}), or use fewer params.inner_steps (now {p.inner_steps})")

    # -- few-shot adaptation (evaluation)

    def adapted_params(self, task: Task, support: tuple[Tensor, Tensor], steps: int) -> adapt.Params:
        """A copy of the meta-parameters after `steps` inner steps on `support`; the learner is unchanged."""
        with torch.no_grad():
            return adapt.adapt(self.model, adapt.params_of(self.model, detach=True), *support,
                               loss_fn=self._loss_fn(task), first_order=True, **self._inner_loop(steps))

    def predictor(self, task: Task, support: tuple[Tensor, Tensor] | None = None) -> Predictor:
        """The meta-parameters as they are, or adapted to `support` with `evaluation.steps` steps."""
        if support is None:
            return super().predictor(task)
        adapted = self.adapted_params(task, support, self.ctx.evaluation.steps)
        return lambda x: adapt.forward(self.model, adapted, x)

    def adaptation_curve(self, task: Task, support: tuple[Tensor, Tensor], steps: int) -> Tensor:
        """[score, loss] on the task's test set after 0..steps inner steps on `support`: (steps+1, 2)."""
        return adapt.adapt_curve(self.model, adapt.params_of(self.model, detach=True), *support, task.x_test,
                                 task.y_test, **self._curve_settings(task, steps))

    def adaptation_curves(self, tasks: list[Task], supports: list, steps: int) -> list[Tensor]:
        """All curves, one vmapped adaptation per group of tasks that can be stacked; the rest one by one."""
        groups: dict[tuple, list[int]] = {}
        for i, (task, support) in enumerate(zip(tasks, supports)):
            groups.setdefault(_stacking_key(task, support), []).append(i)
        curves: list[Tensor | None] = [None] * len(tasks)
        for members in groups.values():
            if len(members) == 1:
                curves[members[0]] = self.adaptation_curve(tasks[members[0]], supports[members[0]], steps)
                continue
            batch = adapt.adapt_curve_many(self.model, adapt.params_of(self.model, detach=True),
                                           *_stacked(tasks, supports, members),
                                           **self._curve_settings(tasks[members[0]], steps))
            for i, curve in zip(members, batch):
                curves[i] = curve
        return curves

    def _curve_settings(self, task: Task, steps: int) -> dict:
        mask = self.ctx.mask(task)
        return {**self._inner_loop(steps), "loss_fn": self._loss_fn(task),
                "score_fn": lambda outputs, targets: score_and_loss(outputs, targets, task.kind, mask)}


def _stacking_key(task: Task, support: tuple[Tensor, Tensor]) -> tuple:
    """Tasks with equal keys can be adapted in one vmap: same kind, output mask and tensor shapes."""
    mask_of = (task.label, task.classes) if task.label is not None else None
    shapes = tuple(tuple(t.shape) for t in (*support, task.x_test, task.y_test))
    return task.kind, mask_of, shapes


def _stacked(tasks: list[Task], supports: list, members: list[int]) -> tuple[Tensor, ...]:
    """(support x, support y, test x, test y) of the `members`, each stacked along a new first dimension."""
    columns = zip(*((*supports[i], tasks[i].x_test, tasks[i].y_test) for i in members))
    return tuple(torch.stack(column) for column in columns)
