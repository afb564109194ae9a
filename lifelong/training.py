"""The supervised inner workings strategies share: losses with task masks, minibatches, optimisers."""

from __future__ import annotations

import math
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lifelong.cost import flops
from lifelong.errors import UserError
from lifelong.streams.task import Task


class TrainingSpec(BaseModel):
    """The training budget: identical for a strategy and the references it is compared with."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=1, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=0.01, gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)


class NonFiniteLossError(UserError, ValueError):
    """Training produced NaN or inf; the message names the setting to change."""


def make_optimizer(params, spec: TrainingSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def output_mask(task: Task, n_outputs: int, device: torch.device) -> torch.Tensor | None:
    """Additive logit mask restricting a task-incremental task to its own classes.

    None when the learner is not told the task (class- and domain-incremental) or for regression:
    then every output competes, which is what makes class-incremental learning hard.
    """
    if task.label is None or task.kind != "classification":
        return None
    mask = torch.full((n_outputs,), float("-inf"), device=device)
    mask[list(task.classes)] = 0.0
    return mask


def task_loss(outputs: torch.Tensor, targets: torch.Tensor, kind: str,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (masked logits for task-IL) or mean squared error for regression."""
    if kind == "regression":
        return F.mse_loss(outputs.reshape(targets.shape), targets)
    if mask is not None:
        outputs = outputs + mask
    return F.cross_entropy(outputs, targets)


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches from a dedicated generator, so extra evaluations never shift them."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    return iter(order.split(batch_size))


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, spec: TrainingSpec,
        generator: torch.Generator, mask: torch.Tensor | None,
        batch_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
        add_penalty: Callable[[], torch.Tensor] | None = None,
        project: Callable[[], None] | None = None) -> float:
    """Train on `task` for `spec.epochs`; return the mean training loss.

    `batch_loss(idx)` (indices into the task's training set) replaces the plain task loss when a
    strategy needs more (replay, joint). `add_penalty()`, called after each backward pass, adds a
    penalty's gradient to the parameters' gradients itself and returns the penalty's value, which
    counts in the training loss (EWC: cheaper than differentiating the penalty). `project()`, called
    last before the optimiser step, rewrites the gradients in place (GEM, A-GEM). Losses are summed
    on the device and checked once at the end: no per-step synchronisation. The loop and its steps
    are marked for cost accounting (lifelong.cost.flops): a step's work is fixed by its batch size.
    """
    model.train()
    loss_fn = batch_loss or (lambda idx: task_loss(model(task.x_train[idx]), task.y_train[idx], task.kind, mask))
    total = torch.zeros((), device=task.x_train.device)
    steps = 0
    with flops.loop():
        for _ in range(spec.epochs):
            for idx in minibatches(len(task.x_train), spec.batch_size, generator):
                with flops.step(len(idx), len(idx)):
                    loss = loss_fn(idx)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if add_penalty is not None:
                        loss = loss.detach() + add_penalty()
                    if project is not None:
                        project()
                    optimizer.step()
                total += loss.detach()
                steps += 1
    mean_loss = float(total) / steps
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(
            f"training loss on task {task.name!r} became non-finite (lr={spec.lr}, optimizer={spec.optimizer}); "
            "lower `training.lr`" + ("" if add_penalty is None else
                                     " or the penalty's strength (`params.lambda` for EWC, `params.c` for SI)"))
    return mean_loss
