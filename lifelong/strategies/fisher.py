"""Diagonal empirical Fisher: the mean over examples of the squared per-example loss gradient.

Two exact routes to the same numbers (equal to float rounding):

* a model whose every parameter belongs to an `nn.Linear` applied once to a batch of vectors
  (the MLPs) never needs its per-example gradients: example i's weight gradient is the outer
  product g_i a_i^T of the layer's output gradient and input, so the sum of their squares is
  (g^2)^T (a^2), one matmul per layer after one forward and one backward pass of the batch;
* any other model takes per-example gradients with torch.func (`vmap` of `grad`) over chunks of
  examples, which holds chunk x n_parameters numbers at a time.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def diagonal_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss,
                    chunk: int = 256) -> dict[str, torch.Tensor]:
    """Fisher diagonal of every named parameter over the examples (x, y), in eval mode.

    `loss(outputs, targets)` is the loss of a batch as the mean over its examples (one example
    is a batch of one).
    """
    training = model.training
    model.eval()
    try:
        sums = _linear_fisher_sums(model, x, y, loss, chunk)
        if sums is None:
            sums = _per_example_fisher_sums(model, x, y, loss, chunk)
    finally:
        model.train(training)
    return {name: total / len(x) for name, total in sums.items()}


def _linear_fisher_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss,
                        chunk: int) -> dict[str, torch.Tensor] | None:
    """Sums of squared per-example gradients by (g^2)^T (a^2) per layer; None when the model is not all `nn.Linear`."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {f"{name}.{kind}": p for name, m in linears.items() for kind, p in m.named_parameters(recurse=False)}
    params = dict(model.named_parameters())
    if not params or owned.keys() != params.keys() or not all(p.requires_grad for p in params.values()):
        return None  # another layer type, a parameter shared between layers, or a frozen one
    seen: dict[str, list[tuple]] = {name: [] for name in linears}  # per call: (input, output, output version)

    def record(name):
        return lambda module, inputs, output: seen[name].append((inputs[0].detach(), output, output._version))

    hooks = [m.register_forward_hook(record(name)) for name, m in linears.items()]
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    example_grad = vmap(grad(lambda out, target: loss(out.unsqueeze(0), target.unsqueeze(0))))
    try:
        for start in range(0, len(x), chunk):
            for calls in seen.values():
                calls.clear()
            with torch.enable_grad():
                out = model(x[start:start + chunk])
            if any(len(calls) != 1 or calls[0][0].dim() != 2 or calls[0][1]._version != calls[0][2]
                   for calls in seen.values()):
                return None  # a layer applied twice, to sequences, or its output changed in place
            delta = example_grad(out.detach(), y[start:start + chunk])
            grads = torch.autograd.grad(out, [seen[name][0][1] for name in linears], delta, materialize_grads=True)
            for (name, layer), g in zip(linears.items(), grads):
                g2 = g.square()
                sums[f"{name}.weight"] += g2.T @ seen[name][0][0].square()
                if layer.bias is not None:
                    sums[f"{name}.bias"] += g2.sum(0)
    finally:
        for hook in hooks:
            hook.remove()
        seen.clear()
    return sums


def _per_example_fisher_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss,
                             chunk: int) -> dict[str, torch.Tensor]:
    """Sums of squared per-example gradients from torch.func, for any model."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def example_loss(p, xi, yi):
        return loss(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    sums = {k: torch.zeros_like(v) for k, v in params.items()}
    for start in range(0, len(x), chunk):
        grads = per_example(params, x[start:start + chunk], y[start:start + chunk])
        squares = _squared(grads, keep=(*params.values(), *buffers.values(), x))
        del grads
        for k in squares:
            sums[k] += squares[k].sum(0)
        del squares  # else this chunk's per-example buffers stay alive while the next is computed
    return sums


def _squared(grads: dict[str, torch.Tensor], keep: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """`g ** 2` of every per-example gradient, in place where that cannot touch anything else.

    The per-example gradients (chunk x parameter size) are the largest buffers here; squaring
    them in place spares allocating and filling a second one as large (same values: `square_`
    is the same kernel as `** 2`). Out of place for a gradient that overlaps itself (an expanded
    constant), shares memory with another gradient (autograd can hand one tensor to two
    parameters, e.g. for `w1 + w2`) or with a parameter, buffer or the inputs.
    """
    def storage(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    counts = Counter(storage(g) for g in grads.values())
    kept = {storage(t) for t in keep}
    return {k: g.square_() if g.is_contiguous() and counts[storage(g)] == 1 and storage(g) not in kept
            else g.square() for k, g in grads.items()}
