"""Joint (multitask) learner: after task k, a model trained from scratch on the union of tasks 1..k.

The upper reference of continual learning and RWalk's a*_k for intransigence. It sees all past
data, so it cannot forget; its budget is `training.epochs` passes over the union.
"""

from __future__ import annotations

import torch

from lifelong.strategies.base import Strategy
from lifelong.streams.task import Task
from lifelong.training import fit, make_optimizer, task_loss


class Joint(Strategy):
    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.seen: list[Task] = []

    def learn(self, task: Task) -> dict:
        self.seen.append(task)
        self.model = self.ctx.new_model()
        self.optimizer = make_optimizer(self.model.parameters(), self.ctx.training)
        x = torch.cat([t.x_train for t in self.seen])
        y = torch.cat([t.y_train for t in self.seen])
        masks = self._sample_masks()

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            return task_loss(self.model(x[idx]), y[idx], task.kind, None if masks is None else masks[idx])

        union = Task(task.id, f"tasks 1..{len(self.seen)}", task.kind, x, y, task.x_test, task.y_test)
        loss = fit(self.model, self.optimizer, union, self.ctx.training, self.ctx.shuffle_generator(task),
                   None, batch_loss)
        return {"train_loss": loss}

    def _sample_masks(self) -> torch.Tensor | None:
        """One logit-mask row per training sample (task-IL), or None when no task has a mask."""
        rows = [self.ctx.mask(t) for t in self.seen]
        if rows[0] is None:
            return None
        return torch.cat([row.expand(len(t.x_train), -1) for row, t in zip(rows, self.seen)])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": [t.id for t in self.seen]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seen = [self.ctx.stream.tasks[i].to(self.ctx.device) for i in state["seen"]]  # where learn's tasks are
