"""Experience replay with a reservoir buffer (Chaudhry et al. 2019, "On Tiny Episodic Memories").

Each minibatch of the current task is concatenated with an equally sized minibatch drawn from
the buffer. The buffer is a reservoir sample (Vitter 1985; `lifelong.strategies.buffers`) over
every training example seen so far, updated when a task ends, so a task's own examples are
replayed only on later tasks.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.strategies.buffers import ReservoirBuffer, check_fills
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
        check_fills(ctx.stream, self.params.buffer_size, type(self).__name__.lower(), "buffer_size")
        self.buffer = ReservoirBuffer(self.params.buffer_size)

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        if self.buffer.filled == 0:
            loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask)
        else:
            loss = self._fit_with_replay(task, mask)
        self.remember(task, mask)
        return {"train_loss": loss, "buffer_filled": self.buffer.filled}

    def remember(self, task: Task, mask: torch.Tensor | None) -> None:
        """Offer the task's examples to the buffer, each with its task's output mask (task-IL only), so
        replayed examples are scored among their own classes without rebuilding their tasks."""
        self.buffer.add_task(task, self.ctx.seed, **({} if mask is None else {"mask": mask}))

    def stored_examples(self) -> int:
        return self.buffer.filled

    def _fit_with_replay(self, task: Task, mask: torch.Tensor | None) -> float:
        shuffle = self.ctx.shuffle_generator(task)
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        n_replay = self.params.replay_batch_size or self.ctx.training.batch_size
        masks = None if mask is None else self.buffer["mask"]  # no task has a mask unless this one does
        # one batch tensor, current examples then replayed ones, filled in place at every step
        x = task.x_train.new_empty((self.ctx.training.batch_size + n_replay, *task.x_train.shape[1:]))
        y = task.y_train.new_empty((len(x), *task.y_train.shape[1:]))

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            pick = self.buffer.sample(n_replay, draw)
            n = len(idx)
            for batch, current, stored in ((x, task.x_train, self.buffer["x"]), (y, task.y_train, self.buffer["y"])):
                torch.index_select(current, 0, idx, out=batch[:n])
                torch.index_select(stored, 0, pick, out=batch[n:n + n_replay])
            batch_mask = None if mask is None else torch.cat([mask.expand(n, -1), masks[pick]])
            return task_loss(self.model(x[:n + n_replay]), y[:n + n_replay], task.kind, batch_mask)

        return fit(self.model, self.optimizer, task, self.ctx.training, shuffle, mask, batch_loss)

    def state_dict(self) -> dict:
        return {**super().state_dict(), **self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state)
