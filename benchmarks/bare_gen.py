"""Bare PyTorch loops of `hnet` and `generative_replay` (VAE and GAN), for benchmarks/bench_methods.py.

`BARE` maps a strategy name to `fn(tasks, model, lr, batch_size, seed) -> None`: the algorithm of the
engine's strategy with its default settings, in plain torch (nothing imported from `lifelong`), one
epoch of SGD at `lr` per task. `tasks`: (x_train, y_train, x_test, y_test) per task; `model`: a fresh
MLP (nn.Sequential of Flatten, Linear, ReLU, ...). hnet, as the engine's, ignores `lr`: it trains its
hypernetwork with Adam at its own default step size. Shuffles use torch generators seeded from `seed`
(not the engine's derived seeds: the loops do the same work, not the same draws).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

HNET = {"lr": 1e-3, "beta": 1.0, "embedding_dim": 32, "chunk_embedding_dim": 32, "chunk_size": 4096,
        "hidden": [100, 100]}
DGR = {"latent_dim": 32, "hidden": 256, "generator_lr": 1e-3, "new_weight": 0.5}


def hnet(tasks, model: nn.Module, lr: float, batch_size: int, seed: int) -> None:
    """Chunked hypernetwork writing all of `model`'s weights, output regulariser, task-incremental masks."""
    torch.manual_seed(seed)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    scale, fan_in = [], 1
    for p in model.parameters():
        fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else fan_in
        scale.append(torch.full((p.numel(),), 1 / math.sqrt(3 * fan_in)))
    scale = torch.cat(scale)
    n_weights, h = len(scale), HNET
    widths = [h["embedding_dim"] + h["chunk_embedding_dim"], *h["hidden"]]
    layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
    mlp = nn.Sequential(*layers, nn.Linear(widths[-1], h["chunk_size"]))
    chunks = nn.Parameter(torch.randn(math.ceil(n_weights / h["chunk_size"]), h["chunk_embedding_dim"]))

    def generate(e):  # (k, D) -> (k, n_weights)
        inputs = torch.cat([e[:, None].expand(-1, len(chunks), -1), chunks.expand(len(e), -1, -1)], dim=-1)
        return mlp(inputs).flatten(1)[:, :n_weights] * scale

    embeddings, targets = [], None
    n_outputs = model[-1].out_features
    for x, y, _, _ in tasks:
        e = nn.Parameter(torch.randn(h["embedding_dim"]))
        mask = torch.full((n_outputs,), float("-inf"))
        mask[y.unique()] = 0.0
        optimizer = torch.optim.Adam([*mlp.parameters(), chunks, e], lr=h["lr"])  # its own Adam, as the engine
        for idx in torch.randperm(len(x)).split(batch_size):
            flat = generate(e[None])[0]
            weights = dict(zip(shapes, (piece.view(s) for piece, s in zip(flat.split([math.prod(s) for s in
                                                                                      shapes.values()]),
                                                                            shapes.values()))))
            loss = F.cross_entropy(functional_call(model, weights, (x[idx],)) + mask, y[idx])
            if targets is not None:
                loss = loss + h["beta"] / len(targets) * (generate(torch.stack(embeddings)) - targets).square().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        embeddings.append(e.detach())
        with torch.no_grad():
            targets = generate(torch.stack(embeddings))


class _VAE(nn.Module):
    def __init__(self, n_in: int):
        super().__init__()
        d, z = DGR["hidden"], DGR["latent_dim"]
        self.encoder = nn.Sequential(nn.Linear(n_in, d), nn.ReLU(), nn.Linear(d, 2 * z))
        self.decoder = nn.Sequential(nn.Linear(z, d), nn.ReLU(), nn.Linear(d, n_in))

    def loss(self, x):
        x = x.flatten(1)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        recon = self.decoder(mu + torch.randn_like(mu) * (0.5 * logvar).exp())
        bce = F.binary_cross_entropy_with_logits(recon, x, reduction="none").sum(1)
        return (bce - 0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)).mean()

    @torch.no_grad()
    def sample(self, n, shape):
        return self.decoder(torch.randn(n, DGR["latent_dim"])).sigmoid().view(n, *shape)


def solver_epoch(model: nn.Module, optimizer, x, y, batch_size: int, old) -> None:
    """One epoch of the solver on (x, y) in order, each batch mixed (weight 1 - r) with as many generated
    inputs labelled by the previous solver: `old` = (previous solver, draw(n) -> inputs), None on task 1."""
    r = DGR["new_weight"]
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        loss = F.cross_entropy(model(xb), yb)
        if old:
            xr = old[1](batch_size)
            with torch.no_grad():
                yr = old[0](xr).argmax(1)
            loss = r * loss + (1 - r) * F.cross_entropy(model(xr), yr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def generative_replay(tasks, model: nn.Module, lr: float, batch_size: int, seed: int) -> None:
    """Deep Generative Replay with a VAE: solver then generator per task, each on new + generated inputs."""
    torch.manual_seed(seed)
    shape = tasks[0][0].shape[1:]
    vae = _VAE(math.prod(shape))
    solver_opt = torch.optim.SGD(model.parameters(), lr=lr)
    vae_opt = torch.optim.Adam(vae.parameters(), lr=DGR["generator_lr"])
    r = DGR["new_weight"]
    for t, (x, y, _, _) in enumerate(tasks):
        old = (copy.deepcopy(model).eval(), copy.deepcopy(vae).eval()) if t else None
        order = torch.randperm(len(x))
        solver_epoch(model, solver_opt, x[order], y[order], batch_size,
                     old and (old[0], lambda n: old[1].sample(n, shape)))
        for idx in order.split(batch_size):
            loss = vae.loss(x[idx])
            if old:
                loss = r * loss + (1 - r) * vae.loss(old[1].sample(batch_size, shape))
            vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            vae_opt.step()


WGAN_GP = {"generator_lr": 1e-4, "betas": (0.5, 0.9), "critic_updates": 5, "gradient_penalty": 10.0}


def generative_replay_gan(tasks, model: nn.Module, lr: float, batch_size: int, seed: int) -> None:
    """Deep Generative Replay with a WGAN-GP (Shin et al.'s generator): 5 critic steps per generator step,
    the critic's real inputs the new task's and the previous generator's, weighted r and 1 - r."""
    torch.manual_seed(seed)
    shape = tasks[0][0].shape[1:]
    n_in, d, z, g = math.prod(shape), DGR["hidden"], DGR["latent_dim"], WGAN_GP
    generator = nn.Sequential(nn.Linear(z, d), nn.ReLU(), nn.Linear(d, n_in), nn.Sigmoid())
    critic = nn.Sequential(nn.Linear(n_in, d), nn.ReLU(), nn.Linear(d, 1))
    solver_opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen_opt = torch.optim.Adam(generator.parameters(), lr=g["generator_lr"], betas=g["betas"])
    critic_opt = torch.optim.Adam(critic.parameters(), lr=g["generator_lr"], betas=g["betas"])
    r = DGR["new_weight"]

    def sample(gen, n):
        with torch.no_grad():
            return gen(torch.randn(n, z))

    for t, (x, y, _, _) in enumerate(tasks):
        old = (copy.deepcopy(model).eval(), copy.deepcopy(generator).eval()) if t else None
        order = torch.randperm(len(x))
        solver_epoch(model, solver_opt, x[order], y[order], batch_size,
                     old and (old[0], lambda n: sample(old[1], n).view(-1, *shape)))
        for idx in order.split(batch_size):
            parts = [(x[idx].flatten(1), r if old else 1.0)]
            if old:
                parts.append((sample(old[1], batch_size), 1 - r))
            real = torch.cat([p for p, _ in parts])
            for _ in range(g["critic_updates"]):
                fake = sample(generator, len(real))
                between = torch.lerp(fake, real, torch.rand(len(real), 1)).requires_grad_()
                slope, = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
                loss = (critic(fake).mean() - sum(w * critic(p).mean() for p, w in parts)
                        + g["gradient_penalty"] * (slope.norm(dim=1) - 1).square().mean())
                critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                critic_opt.step()
            critic.requires_grad_(False)
            loss = -critic(generator(torch.randn(len(real), z))).mean()
            critic.requires_grad_(True)
            gen_opt.zero_grad(set_to_none=True)
            loss.backward()
            gen_opt.step()


BARE = {"hnet": hnet, "generative_replay": generative_replay, "generative_replay_gan": generative_replay_gan}
