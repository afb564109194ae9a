"""Learning without Forgetting (Li & Hoiem 2017, "Learning without Forgetting", TPAMI).

No old data is kept. Before training on a new task, the network's outputs for the classes of the
earlier tasks are recorded on the new task's training images (the responses of the "old
heads"); training then minimises the new task's loss plus alpha times the knowledge-distillation
cross-entropy between those recorded outputs and the current ones, both softened by the
temperature T: -sum_j p_j^(1/T) log q_j^(1/T) over each old head's classes. An old head is the
classes of one earlier task when the stream gives task labels (task-incremental: a softmax per
head, as in the paper's multi-head network), else all classes seen before (one shared head).
The paper's warm-up step (training the new head alone first) is left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from lifelong.strategies.base import Strategy
from lifelong.strategies.stream_checks import require_classification
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss


class LwFParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(default=1.0, ge=0, description="weight of the distillation loss (lambda_o)")
    temperature: float = Field(default=2.0, gt=0, description="softens both distributions (T)")
    chunk: int = Field(default=1024, ge=1, description="examples per forward pass when recording the old outputs")


class LwF(Strategy):
    Params = LwFParams

    def setup(self, ctx) -> None:
        require_classification(ctx.stream, "lwf", "distils softened class probabilities", "naive, ewc, si, "
                               "replay, agem, gem, der")
        super().setup(ctx)
        self.heads: list[tuple[int, ...]] = []  # the old heads: class groups distilled on later tasks

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        if not self.heads:
            loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask)
        else:
            loss = self._fit_with_distillation(task, mask)
        self._add_head(task)
        return {"train_loss": loss}

    def _fit_with_distillation(self, task: Task, mask: torch.Tensor | None) -> float:
        columns = [torch.tensor(head, device=self.ctx.device) for head in self.heads]
        recorded = self._soft_targets(task.x_train, columns)
        t, alpha = self.params.temperature, self.params.alpha

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            out = self.model(task.x_train[idx])
            loss = task_loss(out, task.y_train[idx], task.kind, mask)
            log_q = [F.log_softmax(out[:, c] / t, dim=1) for c in columns]
            distill = sum(-(p[idx] * lq).sum(1).mean() for p, lq in zip(recorded, log_q))
            return loss + alpha * distill

        return fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                   batch_loss)

    @torch.no_grad()
    def _soft_targets(self, x: torch.Tensor, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        """The old heads' softened probabilities on x, recorded before training (one tensor per head)."""
        self.model.eval()
        out = torch.cat([self.model(x[i:i + self.params.chunk]) for i in range(0, len(x), self.params.chunk)])
        return [F.softmax(out[:, c] / self.params.temperature, dim=1) for c in columns]

    def _add_head(self, task: Task) -> None:
        if task.label is not None:
            self.heads.append(tuple(task.classes))
        else:
            self.heads = [tuple(sorted({*(self.heads[0] if self.heads else ()), *task.classes}))]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "heads": [list(h) for h in self.heads]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.heads = [tuple(h) for h in state["heads"]]
