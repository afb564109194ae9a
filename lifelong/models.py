"""Backbones chosen by name in the config: an MLP and a small conv net."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lifelong.errors import ConfigError

Width = Annotated[int, Field(ge=1, le=1_000_000)]


class ModelSpec(BaseModel):
    """The `model:` section of a config."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mlp", "convnet"] = "mlp"
    hidden: list[Width] = Field(default=[256, 256], description="MLP hidden widths")
    channels: list[Width] = Field(default=[32, 32], description="conv widths, one 3x3 conv + 2x2 pool each")
    activation: Literal["relu", "tanh"] = "relu"


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The backbone for a stream's input shape, ending in one shared output layer."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[spec.activation]
    if spec.type == "mlp":
        return _mlp(math.prod(input_shape), spec.hidden, n_outputs, act)
    if len(input_shape) != 3:
        raise ConfigError(f"model.type=convnet needs image inputs (C, H, W); this stream gives {input_shape}. "
                          "Use model.type=mlp for vector inputs.")
    return _convnet(input_shape, spec.channels, spec.hidden, n_outputs, act)


def _mlp(n_in: int, hidden: list[int], n_out: int, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(n_in, width), act()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _convnet(input_shape: tuple[int, ...], channels: list[int], hidden: list[int], n_out: int,
             act: type[nn.Module]) -> nn.Sequential:
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for width in channels:
        layers += [nn.Conv2d(c, width, 3, padding=1), act(), nn.MaxPool2d(2)]
        c, h, w = width, h // 2, w // 2
    if h == 0 or w == 0:
        raise ConfigError(f"model.channels has {len(channels)} pooling stages, too many for inputs {input_shape}: "
                          f"each halves the height and width; give at most {_max_pools(input_shape)} channels")
    return nn.Sequential(*layers, _mlp(c * h * w, hidden, n_out, act))


def _max_pools(input_shape: tuple[int, ...]) -> int:
    return min(input_shape[1:]).bit_length() - 1


def seeded_model(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int, seed: int,
                 device: torch.device) -> nn.Module:
    """A model whose initial weights depend on `seed` only, never on global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec, input_shape, n_outputs)
    return model.to(device)
