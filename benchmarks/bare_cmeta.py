"""Bare PyTorch loops of the continual meta-learners, for the speed table of `benchmarks/bench_methods.py`.

`BARE` maps a strategy name to `fn(tasks, model, lr, batch_size, seed) -> None`: the same algorithm
as the engine's strategy of that name with the same defaults, written as a plain loop that imports
nothing from `lifelong` (tasks: a list of (x_train, y_train, x_test, y_test) tensors of a
class-incremental stream; model: a fresh `nn.Sequential` MLP ending in a Linear layer; one epoch;
`lr` is `training.lr`, which only MER uses: the others step by their own meta step sizes, as the
engine's do). Random draws use the loops' own generators, so batches differ from the engine's
while the work is the same. Check that every loop runs, at tiny size:

    python benchmarks/bare_cmeta.py --tiny
"""

from __future__ import annotations

import argparse
import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

BUFFER = 200  # every replay-based learner's default buffer_size


class Reservoir:
    """Vitter's algorithm R over every example seen, updated at the end of each task (as `replay` does)."""

    def __init__(self, capacity: int, seed: int):
        self.capacity, self.seen, self.rng = capacity, 0, np.random.default_rng(seed)
        self.x = self.y = None

    @property
    def filled(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.x is None:
            self.x, self.y = x.new_zeros((self.capacity, *x.shape[1:])), y.new_zeros(self.capacity)
        slots = {}
        for offset, example in enumerate(self.rng.permutation(len(x))):
            position = self.seen + offset
            slot = position if position < self.capacity else int(self.rng.integers(0, position + 1))
            if slot < self.capacity:
                slots[slot] = int(example)
        self.seen += len(x)
        where, which = torch.tensor(list(slots)), torch.tensor(list(slots.values()))
        self.x[where], self.y[where] = x[which], y[which]

    def sample(self, n: int, draw: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(self.filled, (n,), generator=draw)
        return self.x[pick], self.y[pick]


def with_memories(x, y, memory: Reservoir, n: int, draw: torch.Generator):
    if not memory.filled:
        return x, y
    xr, yr = memory.sample(n, draw)
    return torch.cat([x, xr]), torch.cat([y, yr])


def sgd_online(loss_of, fast: dict, xs, ys, lrs: dict, create_graph: bool) -> dict:
    """One SGD step on each (x, y) in turn on the parameter dict `fast`."""
    for x, y in zip(xs, ys):
        grads = torch.autograd.grad(loss_of(fast, x, y), list(fast.values()), create_graph=create_graph)
        fast = {k: v - lrs[k] * g for (k, v), g in zip(fast.items(), grads)}
    return fast


# --------------------------------------------------------------------------- OML and ANML

def oml(tasks, model, lr, batch_size, seed, *, inner_lr=0.1, meta_lr=0.01, trajectory=2) -> None:
    """Javed & White 2019: meta-learned body, head learned online over a trajectory (second order)."""
    body, head = model[:-1], model[-1]
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr, fused=True)
    memory, draw = Reservoir(BUFFER, seed), torch.Generator().manual_seed(seed)

    def loss_of(p, z, y):
        return F.cross_entropy(F.linear(z, p["weight"], p["bias"]), y)

    for x_train, y_train, _, _ in tasks:
        for idx in torch.randperm(len(x_train), generator=draw).split(trajectory * batch_size):
            x, y = with_memories(x_train[idx], y_train[idx], memory, len(idx), draw)
            z = body(x)
            fast = sgd_online(loss_of, dict(head.named_parameters()), z[:len(idx)].split(batch_size),
                              y[:len(idx)].split(batch_size), {"weight": inner_lr, "bias": inner_lr}, True)
            loss = loss_of(fast, z, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        memory.add(x_train, y_train)


def anml(tasks, model, lr, batch_size, seed, *, inner_lr=0.01, meta_lr=0.01, trajectory=1) -> None:
    """Beaulieu et al. 2020: a neuromodulatory MLP gates the prediction network's last hidden layer."""
    body, head = model[:-1], model[-1]
    nm = copy.deepcopy(body)
    nm.append(nn.Linear(head.in_features, head.in_features))
    optimizer = torch.optim.Adam([*model.parameters(), *nm.parameters()], lr=meta_lr, fused=True)
    memory, draw = Reservoir(BUFFER, seed), torch.Generator().manual_seed(seed)
    names = [f"pn.{k}" for k, _ in model.named_parameters()]
    n_body = len(list(body.parameters()))

    def forward(p, x):
        values = [p[k] for k in names]
        h = functional_call(body, dict(zip((k for k, _ in body.named_parameters()), values[:n_body])), (x,))
        return F.linear(h * torch.sigmoid(nm(x)), *values[n_body:])

    def loss_of(p, x, y):
        return F.cross_entropy(forward(p, x), y)

    for x_train, y_train, _, _ in tasks:
        for idx in torch.randperm(len(x_train), generator=draw).split(trajectory * batch_size):
            x, y = with_memories(x_train[idx], y_train[idx], memory, len(idx), draw)
            fast = sgd_online(loss_of, dict(zip(names, model.parameters())), x[:len(idx)].split(batch_size),
                              y[:len(idx)].split(batch_size), dict.fromkeys(names, inner_lr), True)
            loss = loss_of(fast, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        memory.add(x_train, y_train)


# --------------------------------------------------------------------------- MER and La-MAML

def mer(tasks, model, lr, batch_size, seed, *, beta=0.5, gamma=1.0, batches=1, steps=2) -> None:
    """Riemer et al. 2019, batch variant: SGD steps over the minibatch mixed with memories, inside Reptile."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    memory, draw = Reservoir(BUFFER, seed), torch.Generator().manual_seed(seed)
    weights = list(model.parameters())
    for x_train, y_train, _, _ in tasks:
        for idx in torch.randperm(len(x_train), generator=draw).split(batch_size):
            start = [w.detach().clone() for w in weights]
            for _ in range(batches):
                before = [w.detach().clone() for w in weights]
                x, y = with_memories(x_train[idx], y_train[idx], memory, batch_size, draw)
                for piece in torch.randperm(len(x), generator=draw).split(math.ceil(len(x) / steps)):
                    loss = F.cross_entropy(model(x[piece]), y[piece])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    torch._foreach_lerp_(weights, before, 1 - beta)
            with torch.no_grad():
                torch._foreach_lerp_(weights, start, 1 - gamma)
        memory.add(x_train, y_train)


def lamaml(tasks, model, lr, batch_size, seed, *, alpha_init=0.1, alpha_lr=0.3, inner_steps=1,
           grad_clip_norm=2.0) -> None:
    """Gupta et al. 2020: first-order look-ahead, learned per-parameter rates, weights stepped by max(alpha, 0);
    the weights' and the rates' meta-gradients each clipped to total norm `grad_clip_norm`, as in the paper's code."""
    names = [k for k, _ in model.named_parameters()]
    weights = list(model.parameters())
    alpha = [torch.full_like(w, alpha_init).requires_grad_() for w in weights]
    optimizer = torch.optim.SGD(alpha, lr=alpha_lr)
    memory, draw = Reservoir(BUFFER, seed), torch.Generator().manual_seed(seed)

    def loss_of(p, x, y):
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    for x_train, y_train, _, _ in tasks:
        for idx in torch.randperm(len(x_train), generator=draw).split(batch_size):
            x, y = with_memories(x_train[idx], y_train[idx], memory, len(idx), draw)
            piece = math.ceil(len(idx) / inner_steps)
            fast = sgd_online(loss_of, dict(zip(names, weights)), x[:len(idx)].split(piece), y[:len(idx)].split(piece),
                              dict(zip(names, alpha)), False)
            grads = list(torch.autograd.grad(loss_of(fast, x, y), weights + alpha))
            weight_grads, rate_grads = grads[:len(weights)], grads[len(weights):]
            for part in (weight_grads, rate_grads):
                norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(part)))
                torch._foreach_mul_(part, (grad_clip_norm / (norm + 1e-6)).clamp(max=1.0))
            for rate, g in zip(alpha, rate_grads):
                rate.grad = g
            optimizer.step()
            with torch.no_grad():
                torch._foreach_addcmul_(weights, weight_grads, [a.clamp(min=0) for a in alpha], value=-1)
        memory.add(x_train, y_train)


# --------------------------------------------------------------------------- FTML

def ftml(tasks, model, lr, batch_size, seed, *, inner_lr=0.01, meta_lr=1e-3, meta_steps=100, meta_batch=25,
         shots=10, queries=10) -> None:
    """Finn et al. 2019: after each task, second-order MAML (one inner step) over every task seen."""
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr, fused=True)
    draw = torch.Generator().manual_seed(seed)
    seen = []

    def query_loss(params, xs, ys, xq, yq):
        grads = grad(lambda p: F.cross_entropy(functional_call(model, p, (xs,)), ys))(params)
        fast = {k: params[k] - inner_lr * grads[k] for k in params}
        return F.cross_entropy(functional_call(model, fast, (xq,)), yq)

    def episodes(task, n):
        x, y, members = task
        picks = torch.stack([m[torch.rand(n, len(m), generator=draw).argsort(1)[:, :shots + queries]]
                             for m in members], 1)  # (n, classes, shots + queries)
        xe, ye = x[picks], y[picks]
        return (xe[:, :, :shots].flatten(1, 2), ye[:, :, :shots].flatten(1, 2),
                xe[:, :, shots:].flatten(1, 2), ye[:, :, shots:].flatten(1, 2))

    for x_train, y_train, _, _ in tasks:
        seen.append((x_train, y_train, [(y_train == c).nonzero().flatten() for c in y_train.unique()]))
        choices = torch.randint(len(seen), (meta_steps, meta_batch), generator=draw)
        for row in choices:  # every task has as many classes (a split stream): one vmap over all episodes
            counts = torch.bincount(row, minlength=len(seen)).tolist()
            drawn = [episodes(seen[k], count) for k, count in enumerate(counts) if count]
            loss = vmap(query_loss, in_dims=(None, 0, 0, 0, 0))(
                dict(model.named_parameters()), *(torch.cat(part) for part in zip(*drawn))).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


BARE = {"oml": oml, "anml": anml, "mer": mer, "lamaml": lamaml, "ftml": ftml}


def tiny_tasks(n_tasks: int = 3, per_class: int = 30, dim: int = 20, seed: int = 0):
    """A tiny class-incremental stream of Gaussian blobs, two classes a task."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(2 * n_tasks, dim, generator=g)
    tasks = []
    for t in range(n_tasks):
        y = torch.tensor([2 * t, 2 * t + 1]).repeat_interleave(per_class)
        tasks.append((centres[y] + torch.randn(len(y), dim, generator=g), y,
                      centres[y] + torch.randn(len(y), dim, generator=g), y.clone()))
    return tasks, dim, 2 * n_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="run every loop once on a tiny stream")
    args = parser.parse_args()
    if not args.tiny:
        parser.error("this module is imported by bench_methods.py; --tiny only checks that each loop runs")
    torch.set_num_threads(1)
    tasks, dim, classes = tiny_tasks()
    for name, fn in BARE.items():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                              nn.Linear(32, classes))
        kwargs = {"meta_steps": 5, "shots": 5, "queries": 5} if name == "ftml" else {}
        fn(tasks, model, 0.1, 10, 0, **kwargs)
        x, y = torch.cat([t[2] for t in tasks]), torch.cat([t[3] for t in tasks])
        with torch.no_grad():
            accuracy = float((model(x).argmax(1) == y).float().mean())
        print(f"{name}: ran; accuracy on all tasks {accuracy:.2f}")


if __name__ == "__main__":
    main()
