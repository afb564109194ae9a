"""Dark Experience Replay++ (Buzzega, Boschini, Porrello, Abati & Calderara 2020, "Dark Experience
for General Continual Learning: a Strong, Simple Baseline", NeurIPS).

Every minibatch is offered to a reservoir buffer as it is trained on, together with the logits
the network gave it at that step (its "dark knowledge"); the buffer is sampled from the second
step on, current task included. The loss is the task loss plus alpha times the mean squared
error between the current and the stored logits of one buffer minibatch, plus beta times the
task loss on the stored labels of another (the "++" term). Both buffer minibatches go through
the network with the current one in a single forward pass. On task-incremental streams each
stored example keeps its own task's output mask for the label term.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.strategies.buffers import ReservoirBuffer, check_fills, last_writes, reservoir_slots
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss


class DERParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buffer_size: int = Field(default=200, ge=1, description="examples (with their logits) kept over the lifetime")
    alpha: float = Field(default=0.1, ge=0, description="weight of the logit-matching (MSE) term")
    beta: float = Field(default=0.5, ge=0, description="weight of the stored-label term (0: plain DER)")
    replay_batch_size: int | None = Field(default=None, ge=1, description="each buffer minibatch; default: "
                                                                           "training.batch_size")


class DER(Strategy):
    Params = DERParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        check_fills(ctx.stream, self.params.buffer_size, "der", "buffer_size")
        self.buffer = ReservoirBuffer(self.params.buffer_size)

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        spec, n_replay = self.ctx.training, self.params.replay_batch_size or self.ctx.training.batch_size
        arrivals = Arrivals(self.buffer, task, spec.epochs, spec.batch_size, self.ctx.seed)
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        alpha, beta = self.params.alpha, self.params.beta
        n_label = n_replay if beta else 0  # plain DER (beta 0) draws no label minibatch
        shared = {} if mask is None else {"mask": mask}

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            x, y = task.x_train[idx], task.y_train[idx]
            n = len(idx)
            if self.buffer.filled == 0:
                out = self.model(x)
                loss = task_loss(out, y, task.kind, mask)
            else:
                logit_pick, label_pick = self.buffer.sample(n_replay, draw), self.buffer.sample(n_label, draw)
                stored = self.buffer["x"]
                out = self.model(torch.cat([x, stored[logit_pick], stored[label_pick]]))
                loss = (task_loss(out[:n], y, task.kind, mask)
                        + alpha * F.mse_loss(out[n:n + n_replay], self.buffer["logits"][logit_pick]))
                if beta:
                    masks = self.buffer.fields.get("mask")
                    loss = loss + beta * task_loss(out[n + n_replay:], self.buffer["y"][label_pick], task.kind,
                                                   None if masks is None else masks[label_pick])
            slots, rows = arrivals.next_batch(n)
            self.buffer.write(slots, x=x[rows], y=y[rows], logits=out[:n].detach()[rows],
                              **{k: v.expand(len(rows), *v.shape) for k, v in shared.items()})
            return loss

        loss = fit(self.model, self.optimizer, task, spec, self.ctx.shuffle_generator(task), mask, batch_loss)
        return {"train_loss": loss, "buffer_filled": self.buffer.filled}

    def stored_examples(self) -> int:
        return self.buffer.filled

    def state_dict(self) -> dict:
        return {**super().state_dict(), **self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state)


class Arrivals:
    """Where each training step's examples go in the reservoir, worked out on the host when the
    task starts (`fit`'s batches are consecutive runs of `batch_size` arrivals per epoch), so a
    step only slices device tensors: the buffer slots taken and the rows of the batch that take them."""

    def __init__(self, buffer: ReservoirBuffer, task: Task, epochs: int, batch_size: int, seed: int):
        n = len(task.y_train)
        rng = np.random.default_rng(derive_seed(seed, "buffer", task.id))
        slots = reservoir_slots(rng, buffer.seen, epochs * n, buffer.capacity)
        position = np.arange(epochs * n)
        batch = (position // n) * -(-n // batch_size) + (position % n) // batch_size
        stay = last_writes(slots, batch)
        stay = stay[slots[stay] < buffer.capacity]
        device = task.x_train.device
        self.slots = torch.from_numpy(slots[stay]).to(device)
        self.rows = torch.from_numpy((position[stay] % n) % batch_size).to(device)
        self.ends = np.searchsorted(batch[stay], np.arange(batch[-1] + 1), side="right").tolist()
        self.sizes = np.bincount(batch).tolist()
        self.buffer, self.step = buffer, 0

    def next_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's slots and batch rows; counts the batch (of `size` examples) as seen."""
        if size != self.sizes[self.step]:
            raise RuntimeError(f"step {self.step} trains on {size} examples, not the {self.sizes[self.step]} "
                               "planned: `training.minibatches` no longer splits epochs as `Arrivals` assumes")
        start = self.ends[self.step - 1] if self.step else 0
        end = self.ends[self.step]
        self.buffer.seen += self.sizes[self.step]
        self.step += 1
        return self.slots[start:end], self.rows[start:end]
