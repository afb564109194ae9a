"""What the continual meta-learners OML, ANML and La-MAML share: meta-training on the stream itself.

Where the episodic meta-learners of `meta_base` draw support/query episodes from a task, these
learners see a task the way a continual learner does, as a stream of minibatches, and meta-learn
from it as it passes (Javed & White 2019; Beaulieu et al. 2020; Gupta et al. 2020):

- per epoch (`training.epochs`), the task's training examples are shuffled (the same order as
  `naive` sees) and cut into *trajectories* of consecutive examples;
- the inner loop (`lifelong.adapt.adapt_online`) takes one SGD step on each successive inner
  batch of a trajectory, on a functional copy of the fast weights;
- the meta-loss is the loss of the adapted weights on the whole trajectory plus as many
  examples drawn from the replay buffer (`replay_batch_size`, default: the trajectory's size);
  one outer update per trajectory (what it updates and how is the subclass's `meta_update`);
- at the end of the task its examples enter the reservoir buffer of `replay` (Vitter's
  algorithm R over the lifetime, so a task is remembered from the next task on).

The learner that is evaluated is the meta-parameters after the last outer update (the adapted
weights of a trajectory are thrown away, as in the papers' meta-training). Few-shot evaluation
adapts a copy with the learner's own inner loop (its fast weights, its step sizes), as the
episodic meta-learners do. The meta-losses are summed on the device and checked once a task.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from lifelong import adapt
from lifelong.cost import flops
from lifelong.seeding import derive_seed
from lifelong.strategies.meta_base import MetaLearner
from lifelong.strategies.replay import Replay
from lifelong.streams.task import Stream, Task
from lifelong.training import minibatches, task_loss


class ContinualMetaParams(BaseModel):
    """Settings every continual meta-learner has."""

    model_config = ConfigDict(extra="forbid")

    buffer_size: int = Field(default=200, ge=1, description="examples kept over the whole lifetime (reservoir)")
    replay_batch_size: int | None = Field(default=None, ge=1,
                                          description="remembered examples in each meta-loss; default: as many "
                                                      "as the trajectory holds")
    inner_lr: float = Field(default=0.01, gt=0, le=10,
                            description="inner SGD step size, in meta-training and few-shot evaluation")


class ContinualMetaLearner(Replay, MetaLearner):
    """`replay`'s reservoir buffer (and its state) with a `MetaLearner`'s few-shot adaptation.

    Subclasses set `network`, `trajectory_sizes` and `meta_update`; the outer optimiser is
    `MetaLearner`'s (Adam with `params.meta_lr`) unless `outer_optimizer` says otherwise.
    """

    Params = ContinualMetaParams

    def _check_episodes(self, stream: Stream) -> None:
        """No episodes to check: these learners meta-train on the stream itself (replay checks the buffer)."""

    def trajectory_sizes(self) -> tuple[int, int]:
        """(examples per trajectory, examples per inner step)."""
        raise NotImplementedError

    def meta_update(self, inner_x: tuple[Tensor, ...], inner_y: tuple[Tensor, ...], x: Tensor, y: Tensor,
                    inner_loss: adapt.LossFn, meta_loss: adapt.LossFn) -> Tensor:
        """One outer update: adapt on the inner batches in turn, score on (x, y); returns the meta-loss."""
        raise NotImplementedError

    def outer_step(self, meta_loss: Tensor) -> Tensor:
        """Step the outer optimiser on the meta-loss's gradient; returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        meta_loss.backward()
        self.optimizer.step()
        return meta_loss

    def learn(self, task: Task) -> dict:
        size, step = self.trajectory_sizes()
        mask = self.ctx.mask(task)
        masks = None if mask is None or not self.buffer.filled else self.buffer["mask"]
        shuffle = self.ctx.shuffle_generator(task)
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        inner_loss = self._loss_fn(task)
        total, updates = torch.zeros((), device=self.ctx.device), 0
        with flops.loop():  # a step's work is fixed by its trajectory's size (the buffer is fixed in a task)
            for _ in range(self.ctx.training.epochs):
                for idx in minibatches(len(task.x_train), size, shuffle):
                    with flops.step(len(idx), len(idx)):
                        x, y, rows = with_memories(self, task, idx, self.params.replay_batch_size or len(idx), mask,
                                                   masks, draw)
                        loss = self.meta_update(x[:len(idx)].split(step), y[:len(idx)].split(step), x, y,
                                                inner_loss,
                                                lambda out, target, rows=rows: task_loss(out, target, task.kind,
                                                                                         rows))
                    total += loss.detach()
                    updates += 1
        mean = total / updates
        adapt.check_finite(mean, f"meta-training loss on task {task.name!r}", fix=self._non_finite_fix())
        self.remember(task, mask)
        return {"meta_loss": float(mean), "buffer_filled": self.buffer.filled}

    def _non_finite_fix(self) -> str:
        return (f"lower params.inner_lr (now {self.params.inner_lr}) or params.{self.OUTER_LR} "
                f"(now {getattr(self.params, self.OUTER_LR)})")

    def _inner_loop(self, steps: int | None = None) -> dict:
        """Few-shot evaluation's inner loop: `steps` steps on the support set with the learner's step sizes."""
        return {"steps": steps, "lr": self.params.inner_lr, "adapt_keys": self.adapt_keys(),
                "per_param_lr": self.inner_lrs()}


def with_memories(learner: Replay, task: Task, idx: Tensor, n_replay: int, mask: Tensor | None,
                  masks: Tensor | None, draw: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
    """The task's examples `idx`, then `n_replay` drawn from the learner's reservoir (none while it is
    empty), and their output-mask rows (None when the stream has no masks; `masks`: the buffer's)."""
    x, y, rows = task.x_train[idx], task.y_train[idx], None if mask is None else mask.expand(len(idx), -1)
    if learner.buffer.filled:
        pick = learner.buffer.sample(n_replay, draw)
        x, y = torch.cat([x, learner.buffer["x"][pick]]), torch.cat([y, learner.buffer["y"][pick]])
        rows = None if mask is None else torch.cat([rows, masks[pick]])
    return x, y, rows


def chunk(examples: int, steps: int) -> int:
    """Examples per inner step when `examples` are cut into `steps` inner batches."""
    return max(1, math.ceil(examples / steps))
