"""A small Wasserstein GAN with gradient penalty (WGAN-GP; Gulrajani et al. 2017, "Improved Training
of Wasserstein GANs"): the generator Shin et al. 2017 used for deep generative replay, offered by
`generative_replay` as `generator: gan`.

MLP generator G(z), z ~ N(0, I), ending in a sigmoid for inputs in [0, 1] (`likelihood: bernoulli`)
or linear (`gaussian`); MLP critic D(x), a real-valued score. Each training batch (`mixture_loss`)
first takes `critic_updates` Adam steps on the critic's loss

    E[D(G(z))] - sum_i w_i E[D(x_i)] + lambda E[(||grad D(x^)|| - 1)^2]

where the real inputs come in weighted parts x_i (the new task's, the previous generator's
replays), and x^ lies on a random line between a real and a generated input; then it returns the
generator's loss -E[D(G(z))], which the caller backpropagates and steps with `optimizer`. The paper's
settings are the defaults: 5 critic steps per generator step, lambda = 10, Adam betas (0.5, 0.9).
The critic's optimizer travels in the module's state dict (`get_extra_state`), so a resumed run
continues it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lifelong.strategies.vae import Likelihood, mlp

BETAS = (0.5, 0.9)


class GAN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], hidden: list[int], latent_dim: int, likelihood: Likelihood,
                 lr: float, critic_updates: int, gradient_penalty: float):
        super().__init__()
        self.input_shape, self.latent_dim = tuple(input_shape), latent_dim
        self.critic_updates, self.gradient_penalty = critic_updates, gradient_penalty
        n_in = math.prod(input_shape)
        squash = [nn.Sigmoid()] if likelihood == "bernoulli" else []
        self.generator = nn.Sequential(mlp([latent_dim, *hidden]),
                                       nn.Linear(hidden[-1] if hidden else latent_dim, n_in), *squash)
        self.critic = nn.Sequential(mlp([n_in, *hidden]), nn.Linear(hidden[-1] if hidden else n_in, 1))
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=BETAS)

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The generator's optimiser (the caller steps it); the critic steps inside `mixture_loss`."""
        return torch.optim.Adam(self.generator.parameters(), lr=lr, betas=BETAS)

    def mixture_loss(self, parts: list[tuple[torch.Tensor, float]], noise: torch.Generator) -> torch.Tensor:
        """Train the critic on the weighted real `parts`, then return the generator's loss."""
        n = sum(len(x) for x, _ in parts)
        for _ in range(self.critic_updates):
            loss = self._critic_loss(parts, self.sample(n, noise).flatten(1), noise)
            self.critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.critic_optimizer.step()
        self.critic.requires_grad_(False)  # the generator's step needs no gradient for the critic's weights
        try:
            return -self.critic(self._generate(n, noise)).mean()
        finally:
            self.critic.requires_grad_(True)

    def _critic_loss(self, parts: list[tuple[torch.Tensor, float]], fake: torch.Tensor,
                     noise: torch.Generator) -> torch.Tensor:
        real = torch.cat([x.flatten(1) for x, _ in parts])
        real_score = sum(w * self.critic(x.flatten(1)).mean() for x, w in parts)
        t = torch.rand((len(real), 1), generator=noise, device=real.device, dtype=real.dtype)
        between = (t * real + (1 - t) * fake).requires_grad_()
        slope, = torch.autograd.grad(self.critic(between).sum(), between, create_graph=True)
        penalty = (slope.norm(dim=1) - 1).square().mean()
        return self.critic(fake).mean() - real_score + self.gradient_penalty * penalty

    def _generate(self, n: int, noise: torch.Generator) -> torch.Tensor:
        z = torch.randn((n, self.latent_dim), generator=noise, device=noise.device)
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, noise: torch.Generator) -> torch.Tensor:
        """n generated inputs, shaped as the stream's."""
        return self._generate(n, noise).view(n, *self.input_shape)

    def get_extra_state(self) -> dict:
        return {"critic_optimizer": self.critic_optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
