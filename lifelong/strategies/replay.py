"""Experience replay with a reservoir buffer (Chaudhry et al. 2019, "On Tiny Episodic Memories").

Each minibatch of the current task is concatenated with an equally sized minibatch drawn from
the buffer. The buffer is a reservoir sample (Vitter 1985) over every training example seen so
far, updated when a task ends, so a task's own examples are replayed only on later tasks.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss


class ReplayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buffer_size: int = Field(default=200, ge=1, description="examples kept over the whole lifetime")
    replay_batch_size: int | None = Field(default=None, ge=1, description="default: training.batch_size")


class Replay(Strategy):
    Params = ReplayParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.buffer_x: torch.Tensor | None = None
        self.buffer_y: torch.Tensor | None = None
        self.buffer_task: torch.Tensor | None = None
        self.seen = 0

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        if self.buffer_x is None:
            loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask)
        else:
            loss = self._fit_with_replay(task, mask)
        self._reservoir_update(task)
        return {"train_loss": loss, "buffer_filled": self.filled}

    def stored_examples(self) -> int:
        return self.filled

    def _fit_with_replay(self, task: Task, mask: torch.Tensor | None) -> float:
        shuffle = self.ctx.shuffle_generator(task)
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        n_replay = self.params.replay_batch_size or self.ctx.training.batch_size
        masks = None if mask is None else self._buffer_masks()  # no task has a mask unless this one does
        # one batch tensor, current examples then replayed ones, filled in place at every step
        x = task.x_train.new_empty((self.ctx.training.batch_size + n_replay, *task.x_train.shape[1:]))
        y = task.y_train.new_empty((len(x), *task.y_train.shape[1:]))

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            pick = torch.randint(self.filled, (n_replay,), generator=draw, device=self.ctx.device)
            n = len(idx)
            for batch, current, stored in ((x, task.x_train, self.buffer_x), (y, task.y_train, self.buffer_y)):
                torch.index_select(current, 0, idx, out=batch[:n])
                torch.index_select(stored, 0, pick, out=batch[n:n + n_replay])
            batch_mask = None if mask is None else torch.cat([mask.expand(n, -1), masks[pick]])
            return task_loss(self.model(x[:n + n_replay]), y[:n + n_replay], task.kind, batch_mask)

        return fit(self.model, self.optimizer, task, self.ctx.training, shuffle, mask, batch_loss)

    def _buffer_masks(self) -> torch.Tensor | None:
        rows = [self.ctx.mask(t) for t in self.ctx.stream.tasks]
        if rows[0] is None:
            return None
        return torch.stack(rows)[self.buffer_task.to(self.ctx.device)]

    def _reservoir_update(self, task: Task) -> None:
        """Reservoir sampling (Vitter's algorithm R) over the task's examples in a seeded random order.

        The example at lifetime position i >= capacity draws a slot in [0, i] and replaces its
        content if the slot is in the buffer. The draws are taken in one call (the same numbers as
        one call per example); when several examples hit one slot, the last one stays.
        """
        rng = np.random.default_rng(derive_seed(self.ctx.seed, "buffer", task.id))
        order = rng.permutation(len(task.x_train))
        capacity = self.params.buffer_size
        slots = self.seen + np.arange(len(order))
        late = slots >= capacity
        slots[late] = rng.integers(0, slots[late] + 1)
        kept = slots < capacity
        slots, examples = slots[kept], order[kept]
        last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
        self.seen += len(order)
        self._write(task, slots[last], examples[last])

    def _write(self, task: Task, slots: np.ndarray, examples: np.ndarray) -> None:
        if self.buffer_x is None:
            capacity = self.params.buffer_size
            self.buffer_x = task.x_train.new_zeros((capacity, *task.x_train.shape[1:]))
            self.buffer_y = task.y_train.new_zeros((capacity, *task.y_train.shape[1:]))
            self.buffer_task = torch.zeros(capacity, dtype=torch.long)
        where = torch.from_numpy(slots)
        which = torch.from_numpy(examples).to(task.x_train.device)
        self.buffer_x[where.to(self.buffer_x.device)] = task.x_train[which]
        self.buffer_y[where.to(self.buffer_y.device)] = task.y_train[which]
        self.buffer_task[where] = task.id

    @property
    def filled(self) -> int:
        return min(self.seen, self.params.buffer_size)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "buffer_x": self.buffer_x, "buffer_y": self.buffer_y,
                "buffer_task": self.buffer_task, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer_x, self.buffer_y = state["buffer_x"], state["buffer_y"]
        self.buffer_task, self.seen = state["buffer_task"], int(state["seen"])
