"""ANML: A Neuromodulated Meta-Learning algorithm (Beaulieu, Frati, Miconi, Lehman, Stanley, Clune &
Cheney, ECAI 2020, "Learning to Continually Learn", arXiv:2002.09571).

Two networks see each input: the prediction network (PN, the configured backbone) and a
neuromodulatory network (NM, the backbone's hidden layers with an output as wide as the PN's last
hidden layer). The NM's sigmoid output multiplies (gates) the PN's last hidden activations, so it
decides, per input, which features the PN may use and so which weights an SGD step on that input
changes: selective plasticity, meta-learned to reduce catastrophic forgetting. The inner loop
updates the PN only; the outer loop meta-learns the NM and the PN's initial weights.

What the engine does per task is OML's loop (`lifelong.strategies.continual_meta`): per trajectory
of `trajectory` minibatches, one inner SGD step of the whole PN (`inner_lr`) per minibatch under
the NM's gating, then the meta-loss on the trajectory and as many remembered examples from the
reservoir buffer, backpropagated through the inner steps (second order unless `first_order`)
into the NM and the PN's initial weights, stepped by Adam (`meta_lr`). The learner evaluated is
those meta-parameters; few-shot evaluation adapts the PN under the learned gating. The paper
meta-trains on a separate set and then fine-tunes at meta-test time; here the stream is both.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from lifelong import adapt
from lifelong.models import seeded_model
from lifelong.seeding import derive_seed
from lifelong.strategies.oml import OML, OMLParams, split_backbone


class ANMLParams(OMLParams):
    inner_lr: float = Field(default=0.01, gt=0, le=10,
                            description="inner SGD step size of the prediction network, in meta-training and "
                                        "few-shot evaluation")
    trajectory: int = Field(default=1, ge=1, le=100_000, description="minibatches per trajectory (inner steps)")


class Neuromodulated(nn.Module):
    """`head(body(x) * sigmoid(nm(x)))`: the NM network gates the PN's representation."""

    def __init__(self, body: nn.Module, head: nn.Module, nm: nn.Module):
        super().__init__()
        self.pn = nn.Sequential(body, head)
        self.nm = nm

    def forward(self, x: Tensor) -> Tensor:
        body, head = self.pn
        return head(body(x) * torch.sigmoid(self.nm(x)))


class ANML(OML):
    """Prediction network `model.pn`, adapted in the inner loop; neuromodulator `model.nm`, meta-learned.

    OML's settings and loop; `head_layers` counts the PN's Linear layers after the gated activations.
    """

    Params = ANMLParams

    def network(self, backbone: nn.Module) -> nn.Module:
        body, head = split_backbone(backbone, self.params.head_layers, type(self).__name__)
        ctx = self.ctx
        with torch.no_grad():
            width = body(torch.zeros(1, *ctx.stream.input_shape, device=ctx.device)).shape[1]
        nm_seed = derive_seed(ctx.seed, "init", 0, 1)
        return Neuromodulated(body, head, seeded_model(ctx.model_spec, ctx.stream.input_shape, width, nm_seed,
                                                       ctx.device))

    def adapt_keys(self) -> list[str]:
        return [f"pn.{name}" for name, _ in self.model.pn.named_parameters()]

    def meta_update(self, inner_x, inner_y, x, y, inner_loss, meta_loss) -> Tensor:
        fast = adapt.adapt_online(self.model, adapt.params_of(self.model), inner_x, inner_y, loss_fn=inner_loss,
                                  lr=self.params.inner_lr, first_order=self.params.first_order,
                                  adapt_keys=self.adapt_keys())
        return self.outer_step(meta_loss(adapt.forward(self.model, fast, x), y))
