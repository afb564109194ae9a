"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms",
arXiv:1803.02999).

Adapt to each episode of a meta-batch by `inner_steps` plain SGD steps on its support set,
then move the initialisation a fraction `outer_step` (the paper's epsilon) of the way toward
the mean of the adapted parameters. No query set and no second derivatives: the outer update
is `theta <- theta + outer_step * mean(phi - theta)`, done here as an SGD step (learning rate
`outer_step`) on the "gradient" theta - mean(phi). The reported meta-loss is the support loss
after adaptation. Needs several inner steps: with one, Reptile is joint training on the episodes.

The defaults (10 inner steps, outer step 1: the initialisation becomes the mean of the adapted
parameters of the meta-batch) were the best of four settings tried on the sinusoid family with
a meta-batch of 25; Nichol et al. anneal epsilon from 1 toward 0. Lower `outer_step` for small
meta-batches: with one episode per meta-iteration and epsilon 1, Reptile is plain fine-tuning.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from lifelong import adapt
from lifelong.strategies.meta_base import MetaLearner, MetaParams
from lifelong.streams.episodic import Episodes


class ReptileParams(MetaParams):
    inner_steps: int = Field(default=10, ge=1, le=1_000, description="inner SGD steps per episode")
    outer_step: float = Field(default=1.0, gt=0, le=1,
                              description="epsilon: the fraction of the way toward the mean adapted parameters")


class Reptile(MetaLearner):
    """Batched Reptile with SGD inner loops, vmapped over the episodes of a meta-batch."""

    Params = ReptileParams
    OUTER_LR = "outer_step"

    @property
    def first_order(self) -> bool:
        return True

    def episode_sizes(self) -> tuple[int, int]:
        return self.params.shots, 0

    def outer_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.params.outer_step, fused=True)

    def meta_step(self, episodes: Episodes, loss_fn: adapt.LossFn) -> Tensor:
        x_support, y_support = episodes[:2]
        with self.autocast():
            adapted = adapt.adapt_many(self.model, adapt.params_of(self.model, detach=True), x_support, y_support,
                                       loss_fn=loss_fn, first_order=True, **self._inner_loop())
            loss = adapt.query_loss_many(self.model, adapted, x_support, y_support, loss_fn).mean().float()
        for name, p in self.model.named_parameters():
            p.grad = p.detach() - adapted[name].mean(0)
        self.optimizer.step()
        return loss
