"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, ICLR 2020, arXiv:1909.09157).

MAML whose inner loop adapts only the head (the last layer with parameters); the body is
meta-learned as a feature extractor through the outer loop but never adapted per task, in
training and in few-shot evaluation alike. Raghu et al. find it matches MAML, which says that
MAML's rapid learning is mostly feature reuse. Cheaper: the inner gradients reach the head only.
"""

from __future__ import annotations

from torch import nn

from lifelong.strategies.maml import MAML, MAMLParams


def head_keys(model: nn.Module) -> list[str]:
    """Parameter names of the model's last module that has parameters of its own."""
    owners = [(name, module) for name, module in model.named_modules() if list(module.parameters(recurse=False))]
    if not owners:
        raise ValueError(f"{type(model).__name__} has no parameters; ANIL needs a head to adapt")
    name, module = owners[-1]
    return [f"{name}.{key}" if name else key for key, _ in module.named_parameters(recurse=False)]


class ANIL(MAML):
    """MAML adapting the head only."""

    Params = MAMLParams

    def adapt_keys(self) -> list[str]:
        return head_keys(self.model)
