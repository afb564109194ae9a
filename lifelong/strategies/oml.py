"""OML: Online-aware Meta-Learning (Javed & White, NeurIPS 2019, "Meta-Learning Representations for
Continual Learning", arXiv:1905.12588).

The network is split in two: a representation learning network (RLN, the backbone up to its last
`head_layers` Linear layers), meta-learned slowly, and a prediction learning network (PLN, those
last layers), which learns online. The meta-objective asks that a PLN trained *online* on a
trajectory, one SGD step per inner batch and in order, does well on that whole trajectory and on
a random sample of remembered examples: representations that make online updates interfere less.

What the engine does per task (see `lifelong.strategies.continual_meta`): every trajectory of
`trajectory` consecutive minibatches (`training.batch_size` examples each; batch size 1 is the
paper's per-example inner loop) is embedded once by the RLN, with the remembered examples drawn
from the reservoir buffer; the PLN takes one inner step (`inner_lr`) per minibatch; the meta-loss
on the trajectory and the remembered examples is backpropagated through the inner steps (second
order unless `first_order`) into the RLN and the PLN's initial weights, which Adam (`meta_lr`)
updates. The learner evaluated is those meta-parameters. Few-shot evaluation adapts the PLN only,
as OML adapts at meta-test time. The paper meta-trains on a separate pre-training set and
then freezes the RLN; here the stream is both, so the RLN keeps meta-learning through the lifetime.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from lifelong import adapt
from lifelong.errors import ConfigError
from lifelong.strategies.continual_meta import ContinualMetaLearner, ContinualMetaParams


class OMLParams(ContinualMetaParams):
    inner_lr: float = Field(default=0.1, gt=0, le=10,
                            description="inner SGD step size, in meta-training and few-shot evaluation")
    meta_lr: float = Field(default=0.01, gt=0, le=10, description="Adam step size of the outer loop")
    trajectory: int = Field(default=2, ge=1, le=100_000, description="minibatches per trajectory (inner steps)")
    head_layers: int = Field(default=1, ge=1, description="Linear layers of the prediction network (the paper: 2)")
    first_order: bool = Field(default=False, description="drop the second-order terms of the inner loop")


def split_backbone(backbone: nn.Module, head_layers: int, owner: str) -> nn.Sequential:
    """`Sequential(body, head)`: the head holds the last `head_layers` Linear layers, the body the rest."""
    modules = list(_leaves(backbone))
    linear = [i for i, module in enumerate(modules) if isinstance(module, nn.Linear)]
    convolutional = any(isinstance(module, nn.Conv2d) for module in modules)
    if head_layers > len(linear) or (head_layers == len(linear) and not convolutional):
        raise ConfigError(f"{owner}: params.head_layers = {head_layers} leaves no layer to learn a representation: "
                          f"the backbone has {len(linear)} Linear layers; lower params.head_layers or add "
                          "model.hidden widths")
    cut = linear[-head_layers]
    return nn.Sequential(nn.Sequential(*modules[:cut]), nn.Sequential(*modules[cut:]))


def _leaves(module: nn.Module):
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _leaves(child)
    else:
        yield module


class OML(ContinualMetaLearner):
    """A meta-learned representation (`model[0]`) under an online-learned prediction network (`model[1]`)."""

    Params = OMLParams

    def network(self, backbone: nn.Module) -> nn.Module:
        return split_backbone(backbone, self.params.head_layers, type(self).__name__)

    def adapt_keys(self) -> list[str]:
        return [f"1.{name}" for name, _ in self.model[1].named_parameters()]

    def trajectory_sizes(self) -> tuple[int, int]:
        batch = self.ctx.training.batch_size
        return self.params.trajectory * batch, batch

    def meta_update(self, inner_x, inner_y, x, y, inner_loss, meta_loss) -> Tensor:
        body, head = self.model
        z = body(x)  # the RLN embeds the trajectory and the remembered examples once
        z_inner = z[:sum(len(b) for b in inner_x)].split([len(b) for b in inner_x])
        fast = adapt.adapt_online(head, adapt.params_of(head), z_inner, inner_y, loss_fn=inner_loss,
                                  lr=self.params.inner_lr, first_order=self.params.first_order)
        return self.outer_step(meta_loss(adapt.forward(head, fast, z), y))
