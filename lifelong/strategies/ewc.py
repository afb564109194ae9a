"""Elastic Weight Consolidation (Kirkpatrick et al. 2017), separate and online modes.

Penalty: lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2 with F the diagonal empirical
Fisher (mean squared per-example gradient of the task loss, exact per example; see
`lifelong.strategies.fisher`). `separate` keeps one term per past task (the paper); `online`
(Schwarz et al. 2018) keeps one running Fisher, decayed by `gamma`, anchored at the latest
parameters.

Both expand the quadratic into three running sums, S = sum F, M = sum F*theta*, C = sum F*theta*^2,
so the penalty S*theta^2 - 2*M*theta + C costs the same after 1 task or 100. Its gradient,
lambda * (S*theta - M), is added to the task loss's gradients after each backward pass rather
than differentiated by autograd (same values, a fraction of the work). No Fisher is computed
after the stream's last task: no later task would be penalised with it.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.strategies.base import Strategy
from lifelong.strategies.fisher import diagonal_fisher
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss


class EWCParams(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    lambda_: float = Field(default=100.0, ge=0, alias="lambda", description="penalty strength")
    mode: Literal["separate", "online"] = "separate"
    gamma: float = Field(default=1.0, ge=0, le=1, description="online mode: decay of the old Fisher")
    fisher_samples: int = Field(default=512, ge=1, description="training examples used to estimate the Fisher")


class EWC(Strategy):
    Params = EWCParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.sums: dict[str, dict[str, torch.Tensor]] | None = None

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                   add_penalty=None if self.sums is None else self.add_penalty_grad)
        if task.id + 1 < len(self.ctx.stream):
            self._consolidate(task, mask)
        return {"train_loss": loss}

    @torch.no_grad()
    def add_penalty_grad(self) -> torch.Tensor:
        """Add lambda * (S*theta - M) to every parameter's gradient; return the penalty's value.

        The value is 0.5 * lambda * (theta . (S*theta - M) - M . theta + sum C), from the same
        gradient: two dot products per parameter instead of the elementwise quadratic.
        """
        lam = self.params.lambda_
        value = self._c_total.clone()
        for name, p in self.model.named_parameters():
            g = torch.addcmul(self._minus_m[name], self.sums["S"][name], p)
            flat = p.reshape(-1)
            value += torch.dot(flat, g.reshape(-1)) - torch.dot(flat, self.sums["M"][name].reshape(-1))
            if p.grad is None:
                p.grad = g.mul_(lam)
            else:
                p.grad.add_(g, alpha=lam)
        return 0.5 * lam * value

    def _consolidate(self, task: Task, mask: torch.Tensor | None) -> None:
        fisher = self._fisher(task, mask)
        anchor = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        new = {"S": fisher, "M": {n: f * anchor[n] for n, f in fisher.items()},
               "C": {n: f * anchor[n] ** 2 for n, f in fisher.items()}}
        if self.sums is None:
            self.sums = new
        elif self.params.mode == "separate":
            self.sums = {k: {n: self.sums[k][n] + new[k][n] for n in fisher} for k in new}
        else:
            decayed = {n: self.params.gamma * self.sums["S"][n] + fisher[n] for n in fisher}
            self.sums = {"S": decayed, "M": {n: decayed[n] * anchor[n] for n in fisher},
                         "C": {n: decayed[n] * anchor[n] ** 2 for n in fisher}}
        self._derive()

    def _derive(self) -> None:
        """What every training step reads from the sums: -M and the constant sum of C."""
        self._minus_m = {n: -m for n, m in self.sums["M"].items()}
        self._c_total = sum(c.sum() for c in self.sums["C"].values())

    def _fisher(self, task: Task, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = min(self.params.fisher_samples, len(task.x_train))
        return diagonal_fisher(self.model, task.x_train[:n], task.y_train[:n],
                               lambda out, y: task_loss(out, y, task.kind, mask))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sums": self.sums}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.sums = state["sums"]
        if self.sums is not None:
            self._derive()
