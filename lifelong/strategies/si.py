"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, "Continual Learning Through Synaptic Intelligence").

While a task trains, every parameter accumulates its share of the drop in the task loss along
the optimisation path, the path integral omega += -g * delta (g: the task loss's gradient at a
step, delta: the change the step made). When the task ends, the importance grows by
Omega += omega / (Delta^2 + xi), Delta being the parameter's whole change over the task and xi a
damping that keeps the ratio bounded. Later tasks add the surrogate loss
c * sum_i Omega_i (theta_i - theta~_i)^2 around theta~, the parameters at the end of the last task.

As in `ewc`, the surrogate's gradient 2c * Omega * (theta - theta~) is added to the task loss's
gradient after each backward pass instead of being differentiated; the path integral reads the
task loss's gradient alone, before that addition, as in the paper.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.strategies.base import Strategy
from lifelong.streams.task import Task
from lifelong.training import fit


class SIParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    c: float = Field(default=0.1, ge=0, description="strength of the surrogate loss")
    xi: float = Field(default=1e-3, gt=0, description="damping: Omega += omega / (Delta^2 + xi)")


class SI(Strategy):
    Params = SIParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.importance: list[torch.Tensor] | None = None  # Omega, one tensor per parameter
        self.anchor: list[torch.Tensor] | None = None  # theta~, the parameters when the last task ended

    def learn(self, task: Task) -> dict:
        params = list(self.model.parameters())
        start = [p.detach().clone() for p in params]
        path = PathIntegral(params)
        zero = torch.zeros((), device=self.ctx.device)

        def add_penalty() -> torch.Tensor:
            path.record()
            return zero if self.importance is None else self.add_penalty_grad()

        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task),
                   self.ctx.mask(task), add_penalty=add_penalty)
        path.record()  # the last step's share
        with torch.no_grad():
            change = torch._foreach_sub([p.detach() for p in params], start)
            torch._foreach_mul_(change, change)
            torch._foreach_add_(change, self.params.xi)
            gained = torch._foreach_div(path.omega, change)
            self.importance = gained if self.importance is None else torch._foreach_add(self.importance, gained)
            self.anchor = [p.detach().clone() for p in params]
        return {"train_loss": loss}

    @torch.no_grad()
    def add_penalty_grad(self) -> torch.Tensor:
        """Add 2c * Omega * (theta - theta~) to every gradient; return c * sum Omega (theta - theta~)^2."""
        params = list(self.model.parameters())
        diff = torch._foreach_sub([p.detach() for p in params], self.anchor)
        weighted = torch._foreach_mul(diff, self.importance)
        torch._foreach_add_([p.grad for p in params], weighted, alpha=2 * self.params.c)
        value = sum(torch.dot(w.reshape(-1), d.reshape(-1)) for w, d in zip(weighted, diff))
        return self.params.c * value

    def state_dict(self) -> dict:
        return {**super().state_dict(), "importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.importance, self.anchor = state["importance"], state["anchor"]


class PathIntegral:
    """omega = sum over steps of -g * delta, one step behind: each call first credits the step
    taken since the last call (the gradient then, times the change since), then keeps the
    current gradient and parameters for the next."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = params
        self.omega = [torch.zeros_like(p) for p in params]
        self.before = [p.detach().clone() for p in params]
        self.grad = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def record(self) -> None:
        current = [p.detach() for p in self.params]
        torch._foreach_addcmul_(self.omega, self.grad, torch._foreach_sub(current, self.before), value=-1)
        torch._foreach_copy_(self.before, current)
        torch._foreach_copy_(self.grad, [p.grad for p in self.params])
