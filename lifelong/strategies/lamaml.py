"""La-MAML: Look-ahead Meta-Learning for Continual Learning (Gupta, Yadav & Paull, NeurIPS 2020,
arXiv:2007.13904).

Online first-order MAML with learned per-parameter learning rates alpha (one per weight entry,
as in Meta-SGD). For each incoming minibatch (the paper's Algorithm 1):

1. look ahead: from the weights theta, take `inner_steps` SGD steps in turn on the minibatch cut
   into that many pieces (the paper's MNIST setting, one example per step, is `inner_steps` =
   `training.batch_size`), each step `theta_k+1 = theta_k - alpha * grad` with the inner
   gradients treated as constants (first order);
2. meta-loss: the loss of the looked-ahead weights on the minibatch together with as many
   examples drawn from a small replay buffer (`buffer_size`, reservoir as `replay`; a task's
   examples join it at the task's end);
3. `alpha <- alpha - alpha_lr * d meta-loss / d alpha`: a rate grows where the current
   gradient agrees with the gradient on the past and present together, and shrinks where they
   conflict;
4. `theta <- theta - max(alpha, 0) * d meta-loss / d theta`, with the updated rates clipped at 0,
   so a conflicting direction is frozen rather than reversed.

As in the paper's code, the meta-gradients of the weights and of the rates are each clipped to a
total norm of `grad_clip_norm` (2.0 there) before steps 3 and 4; without it, single-pass runs at
lr 0.1 can diverge. Few-shot evaluation adapts with the learned rates (as the inner loop uses
them, unclipped).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from lifelong import adapt
from lifelong.strategies.continual_meta import ContinualMetaLearner, ContinualMetaParams, chunk


class LaMAMLParams(ContinualMetaParams):
    inner_lr: float = Field(default=0.1, gt=0, le=10, description="initial value of every learned rate alpha")
    alpha_lr: float = Field(default=0.3, gt=0, le=100, description="SGD step size of the learned rates (eta)")
    inner_steps: int = Field(default=1, ge=1, le=100_000,
                             description="look-ahead steps per incoming minibatch, each on its next piece")
    grad_clip_norm: float | None = Field(default=2.0, gt=0, description="clip each meta-gradient (weights, "
                                                                        "rates) to this total norm; null: off")


class LaMAML(ContinualMetaLearner):
    """Look-ahead first-order MAML with learned, clipped per-parameter learning rates (`self.alpha`)."""

    Params = LaMAMLParams
    OUTER_LR = "alpha_lr"

    def network(self, backbone: nn.Module) -> nn.Module:
        """The backbone, and beside it its learned rates, one per weight entry, all `inner_lr` at first."""
        self.alpha = {name: torch.full_like(p, self.params.inner_lr).requires_grad_()
                      for name, p in backbone.named_parameters()}
        return backbone

    def outer_optimizer(self) -> torch.optim.Optimizer:
        """SGD on the learned rates (`alpha_lr`); the weights step by hand, by the clipped rates."""
        return torch.optim.SGD(list(self.alpha.values()), lr=self.params.alpha_lr)

    def inner_lrs(self) -> dict[str, Tensor]:
        return self.alpha

    def _non_finite_fix(self) -> str:
        return f"{super()._non_finite_fix()}, or use fewer params.inner_steps (now {self.params.inner_steps})"

    def trajectory_sizes(self) -> tuple[int, int]:
        batch = self.ctx.training.batch_size
        return batch, chunk(batch, self.params.inner_steps)

    def meta_update(self, inner_x, inner_y, x, y, inner_loss, meta_loss) -> Tensor:
        weights = list(self.model.parameters())
        fast = adapt.adapt_online(self.model, adapt.params_of(self.model), inner_x, inner_y, loss_fn=inner_loss,
                                  lr=self.params.inner_lr, first_order=True, per_param_lr=self.alpha)
        loss = meta_loss(adapt.forward(self.model, fast, x), y)
        grads = torch.autograd.grad(loss, weights + list(self.alpha.values()))
        weight_grads, rate_grads = self._clipped(grads[:len(weights)]), self._clipped(grads[len(weights):])
        for rate, grad in zip(self.alpha.values(), rate_grads):
            rate.grad = grad
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_addcmul_(weights, weight_grads, [rate.clamp(min=0) for rate in self.alpha.values()],
                                    value=-1)
        return loss

    def _clipped(self, grads: tuple[Tensor, ...]) -> list[Tensor]:
        """`grads` scaled down to total norm `grad_clip_norm` when above it (on the device: no sync)."""
        if self.params.grad_clip_norm is None:
            return list(grads)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return torch._foreach_mul(grads, (self.params.grad_clip_norm / (norm + 1e-6)).clamp(max=1.0))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "alpha": {name: rate.detach().clone() for name, rate in self.alpha.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():  # in place: the optimizer holds these very tensors
            for name, rate in self.alpha.items():
                rate.copy_(state["alpha"][name])
