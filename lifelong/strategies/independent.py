"""Independent learner: a fresh model per task with the same budget (the negative-transfer reference).

Task j's model is initialised from its own seed the first time it is needed, so before its own
training it is the same random net that row 0 evaluated: BWT, forgetting and FWT are exactly 0.
It routes by task identity even in class-incremental streams: it is an oracle reference.
"""

from __future__ import annotations

from torch import nn

from lifelong.strategies.base import Predictor, Strategy
from lifelong.streams.task import Task
from lifelong.training import fit, make_optimizer


class Independent(Strategy):
    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.models: dict[int, nn.Module] = {}

    def _model(self, task: Task) -> nn.Module:
        if task.id not in self.models:
            self.models[task.id] = self.ctx.new_model(index=1 + task.id)
        return self.models[task.id]

    def learn(self, task: Task) -> dict:
        model = self._model(task)
        optimizer = make_optimizer(model.parameters(), self.ctx.training)
        loss = fit(model, optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), self.ctx.mask(task))
        return {"train_loss": loss}

    def predictor(self, task: Task, support=None) -> Predictor:
        model = self._model(task)
        model.eval()
        return model

    def predictor_key(self, task: Task) -> int:
        """A model per task: no two tasks share a predictor."""
        return task.id

    def state_dict(self) -> dict:
        return {"models": {str(k): m.state_dict() for k, m in self.models.items()}}

    def load_state_dict(self, state: dict) -> None:
        for key, weights in state["models"].items():
            self.models[int(key)] = self.ctx.new_model(index=1 + int(key))
            self.models[int(key)].load_state_dict(weights)
