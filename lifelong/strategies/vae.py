"""A small variational autoencoder (Kingma & Welling 2014): the input generator of `generative_replay`.

MLP encoder q(z|x) = N(mu(x), diag exp(logvar(x))), MLP decoder p(x|z), prior N(0, I). The
decoder's likelihood is Bernoulli on inputs in [0, 1] (images) or a unit-variance Gaussian on any
real inputs; `negative_elbo` is the loss, per example summed over input dimensions.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Likelihood = Literal["bernoulli", "gaussian"]


def negative_elbo(decoded: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  likelihood: Likelihood) -> torch.Tensor:
    """Mean over the batch of -log p(x|z) + KL(q(z|x) || N(0, I)), each summed over dimensions.

    `decoded` are the decoder's logits (Bernoulli) or means (Gaussian, unit variance, so -log p is
    ||x - mean||^2 / 2 + d/2 log 2 pi); KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)).
    """
    decoded, x = decoded.flatten(1), x.flatten(1)
    if likelihood == "bernoulli":
        reconstruction = F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(1)
    else:
        reconstruction = 0.5 * (x - decoded).square().sum(1) + 0.5 * x.shape[1] * math.log(2 * math.pi)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)
    return (reconstruction + kl).mean()


class VAE(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], hidden: list[int], latent_dim: int, likelihood: Likelihood):
        super().__init__()
        self.input_shape, self.latent_dim, self.likelihood = tuple(input_shape), latent_dim, likelihood
        n_in = math.prod(input_shape)
        self.encoder = mlp([n_in, *hidden])
        self.to_latent = nn.Linear(hidden[-1] if hidden else n_in, 2 * latent_dim)
        self.decoder = nn.Sequential(mlp([latent_dim, *hidden]), nn.Linear(hidden[-1] if hidden else latent_dim, n_in))

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=lr)

    def mixture_loss(self, parts: list[tuple[torch.Tensor, float]], noise: torch.Generator) -> torch.Tensor:
        """sum_i w_i * (negative ELBO of x_i) over the weighted `parts` (x_i, w_i)."""
        return sum(w * self.loss(x, noise) for x, w in parts)

    def loss(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        """The negative ELBO of `x`, with the reparameterisation noise drawn from `noise`."""
        mu, logvar = self.to_latent(self.encoder(x.flatten(1))).chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=noise, device=mu.device, dtype=mu.dtype)
        return negative_elbo(self.decoder(mu + eps * (0.5 * logvar).exp()), x, mu, logvar, self.likelihood)

    @torch.no_grad()
    def sample(self, n: int, noise: torch.Generator) -> torch.Tensor:
        """n inputs decoded from prior draws: the Bernoulli means (probabilities) or Gaussian means."""
        z = torch.randn((n, self.latent_dim), generator=noise, device=noise.device)
        out = self.decoder(z)
        return (out.sigmoid() if self.likelihood == "bernoulli" else out).view(n, *self.input_shape)


def mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)
