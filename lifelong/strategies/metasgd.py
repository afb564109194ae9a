"""Meta-SGD (Li, Zhou, Chen & Li 2017, arXiv:1707.09835).

MAML whose inner step sizes are learned too: one step size per parameter entry (a tensor the
shape of each parameter), updated by the same outer Adam step as the initialisation, so the
meta-learner learns both where to start and in which direction and how far to step. The step
sizes start at `inner_lr` and are used as learned in few-shot evaluation; they may turn
negative, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lifelong.strategies.base import StrategyContext
from lifelong.strategies.maml import MAML, MAMLParams


class MetaSGD(MAML):
    """MAML with learned per-parameter inner step sizes (`self.lrs`)."""

    Params = MAMLParams

    def setup(self, ctx: StrategyContext) -> None:
        super().setup(ctx)
        self.lrs = {name: torch.full_like(p, self.params.inner_lr).requires_grad_()
                    for name, p in self.model.named_parameters()}
        self.optimizer.add_param_group({"params": list(self.lrs.values())})

    def inner_lrs(self) -> dict[str, Tensor]:
        return self.lrs

    def state_dict(self) -> dict:
        return {**super().state_dict(), "lrs": {name: lr.detach().clone() for name, lr in self.lrs.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():  # in place: the optimizer holds these very tensors
            for name, lr in self.lrs.items():
                lr.copy_(state["lrs"][name])
