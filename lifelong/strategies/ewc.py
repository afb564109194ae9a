"""Elastic Weight Consolidation (Kirkpatrick et al. 2017), separate and online modes.

Penalty: lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2 with F the diagonal empirical
Fisher (mean squared per-example gradient of the task loss, exact per example via torch.func).
`separate` keeps one term per past task (the paper); `online` (Schwarz et al. 2018) keeps one
running Fisher, decayed by `gamma`, anchored at the latest parameters.

Both expand the quadratic into three running sums, S = sum F, M = sum F*theta*, C = sum F*theta*^2,
so the penalty S*theta^2 - 2*M*theta + C costs the same after 1 task or 100.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.func import functional_call, grad, vmap

from lifelong.strategies.base import Strategy
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
        batch_loss = None
        if self.sums is not None:
            def batch_loss(idx: torch.Tensor) -> torch.Tensor:
                plain = task_loss(self.model(task.x_train[idx]), task.y_train[idx], task.kind, mask)
                return plain + self.penalty()
        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task),
                   mask, batch_loss)
        self._consolidate(task, mask)
        return {"train_loss": loss}

    def penalty(self) -> torch.Tensor:
        total = 0.0
        for name, p in self.model.named_parameters():
            s, m, c = self.sums["S"][name], self.sums["M"][name], self.sums["C"][name]
            total = total + (s * p * p - 2 * m * p + c).sum()
        return 0.5 * self.params.lambda_ * total

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

    def _fisher(self, task: Task, mask: torch.Tensor | None, chunk: int = 256) -> dict[str, torch.Tensor]:
        """Diagonal empirical Fisher: the mean over examples of the squared per-example gradient."""
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        buffers = dict(self.model.named_buffers())

        def example_loss(p, x, y):
            out = functional_call(self.model, (p, buffers), (x.unsqueeze(0),))
            return task_loss(out, y.unsqueeze(0), task.kind, mask)

        per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
        n = min(self.params.fisher_samples, len(task.x_train))
        fisher = {k: torch.zeros_like(v) for k, v in params.items()}
        self.model.eval()
        for start in range(0, n, chunk):
            grads = per_example(params, task.x_train[start:start + chunk], task.y_train[start:start + chunk])
            squares = _squared(grads, keep=(*params.values(), *buffers.values(), task.x_train))
            del grads
            for k in squares:
                fisher[k] += squares[k].sum(0)
            del squares  # else this chunk's per-example buffers stay alive while the next is computed
        return {k: f / n for k, f in fisher.items()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sums": self.sums}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.sums = state["sums"]


def _squared(grads: dict[str, torch.Tensor], keep: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """`g ** 2` of every per-example gradient, in place where that cannot touch anything else.

    The per-example gradients (chunk x parameter size) are the Fisher estimate's largest buffers;
    squaring them in place spares allocating and filling a second one as large (same values:
    `square_` is the same kernel as `** 2`). Out of place for a gradient that overlaps itself
    (an expanded constant), shares memory with another gradient (autograd can hand one tensor to
    two parameters, e.g. for `w1 + w2`) or with a parameter, buffer or the task's inputs.
    """
    def storage(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    counts = Counter(storage(g) for g in grads.values())
    kept = {storage(t) for t in keep}
    return {k: g.square_() if g.is_contiguous() and counts[storage(g)] == 1 and storage(g) not in kept
            else g.square() for k, g in grads.items()}
