"""MER: Meta-Experience Replay (Riemer, Cases, Ajemian, Liu, Rish, Tu & Tesauro, ICLR 2019, "Learning to
Learn without Forgetting by Maximizing Transfer and Minimizing Interference", arXiv:1810.11910).

Experience replay whose SGD steps are wrapped in Reptile, so that, to first order, the update
also maximises the inner products between the gradients of the examples it mixes (transfer)
instead of letting them interfere. The paper's Algorithm 1 works one example at a time; this is
its batch variant, with the incoming minibatch in the place of the incoming example. For each
minibatch of the task (`training.batch_size`, `training.epochs` passes; SGD with `training.lr`):

    theta_0 <- theta
    for i in 1..batches:                        (s in the paper)
        theta_A <- theta
        B_i <- the minibatch + replay_batch_size examples drawn from the reservoir, shuffled
        `steps` SGD steps on B_i cut into that many pieces, in turn
        theta <- theta_A + beta (theta - theta_A)       within-batch Reptile
    theta <- theta_0 + gamma (theta - theta_0)          across-batch Reptile

The buffer is `replay`'s reservoir (Vitter's algorithm R over the lifetime), updated at the end
of each task (the paper updates it after every example), so the first task trains without
memories. Cost: `batches` x `steps` SGD steps per minibatch where `naive` takes one.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from lifelong.seeding import derive_seed
from lifelong.cost import flops
from lifelong.strategies.continual_meta import chunk, with_memories
from lifelong.strategies.replay import Replay, ReplayParams
from lifelong.streams.task import Task
from lifelong.training import NonFiniteLossError, minibatches, task_loss


class MERParams(ReplayParams):
    beta: float = Field(default=0.5, gt=0, le=1, description="within-batch Reptile step")
    gamma: float = Field(default=1.0, gt=0, le=1, description="across-batch Reptile step")
    batches: int = Field(default=1, ge=1, le=1_000, description="Reptile batches per incoming minibatch (s)")
    steps: int = Field(default=2, ge=1, le=100_000, description="SGD steps per Reptile batch, each on its next piece")


class MER(Replay):
    """Reservoir replay with within-batch (beta) and across-batch (gamma) Reptile interpolation."""

    Params = MERParams

    def learn(self, task: Task) -> dict:
        p, training = self.params, self.ctx.training
        mask = self.ctx.mask(task)
        masks = None if mask is None or not self.buffer.filled else self.buffer["mask"]
        shuffle = self.ctx.shuffle_generator(task)
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        weights = list(self.model.parameters())
        total, count = torch.zeros((), device=self.ctx.device), 0
        self.model.train()
        with flops.loop():  # a minibatch's work is fixed by its size (the buffer is fixed in a task)
            for _ in range(training.epochs):
                for idx in minibatches(len(task.x_train), training.batch_size, shuffle):
                    with flops.step(len(idx), len(idx)):
                        start = [w.detach().clone() for w in weights]
                        for _ in range(p.batches):
                            before = [w.detach().clone() for w in weights]
                            x, y, rows = with_memories(self, task, idx, p.replay_batch_size or training.batch_size,
                                                       mask, masks, draw)
                            order = torch.randperm(len(x), generator=draw, device=self.ctx.device)
                            for piece in order.split(chunk(len(x), p.steps)):
                                loss = task_loss(self.model(x[piece]), y[piece], task.kind,
                                                 None if rows is None else rows[piece])
                                self.optimizer.zero_grad(set_to_none=True)
                                loss.backward()
                                self.optimizer.step()
                                total += loss.detach()
                                count += 1
                            reptile(weights, before, p.beta)
                        reptile(weights, start, p.gamma)
        mean = float(total) / count
        if not math.isfinite(mean):
            raise NonFiniteLossError(f"training loss on task {task.name!r} became non-finite; lower training.lr "
                                     f"(now {training.lr}) or params.beta (now {p.beta})")
        self.remember(task, mask)
        return {"train_loss": mean, "buffer_filled": self.buffer.filled}


@torch.no_grad()
def reptile(weights: list[torch.Tensor], anchor: list[torch.Tensor], step: float) -> None:
    """`weights <- anchor + step (weights - anchor)`, in place."""
    torch._foreach_lerp_(weights, anchor, 1.0 - step)
