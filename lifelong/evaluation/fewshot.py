"""Few-shot evaluation: adapt a copy of the learner on k shots of task j, score on j's test set.

The support set of a task is fixed for the whole lifetime (seeded by run seed and task index),
so every row of the record adapts on the same examples and rows stay comparable.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from lifelong.seeding import generator
from lifelong.streams.task import Task


class EvaluationSpec(BaseModel):
    """The `evaluation:` section: `standard` scores the learner as it is; `few-shot` adapts first."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["standard", "few-shot"] = "standard"
    shots: int = Field(default=5, ge=1, le=10_000, description="support examples per class (per task for regression)")
    steps: int = Field(default=5, ge=0, le=1_000, description="inner SGD steps on the support set")
    inner_lr: float = Field(default=0.01, gt=0, le=10, description="step size when adapting non-meta strategies")


def support_set(task: Task, shots: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`shots` training examples per class of the task (or `shots` points for regression)."""
    draw = generator(seed, "eval", task.id, device=task.y_train.device)
    if task.kind == "regression":
        if len(task.x_train) < shots:
            raise ValueError(f"task {task.name!r} has {len(task.x_train)} training points, fewer than "
                             f"evaluation.shots={shots}; lower evaluation.shots")
        pick = torch.randperm(len(task.x_train), generator=draw, device=draw.device)[:shots]
        return task.x_train[pick], task.y_train[pick]
    picks = []
    for cls in task.classes:
        members = (task.y_train == cls).nonzero().flatten()
        if len(members) < shots:
            raise ValueError(f"task {task.name!r} has {len(members)} training examples of class {cls}, fewer than "
                             f"evaluation.shots={shots}; lower evaluation.shots")
        picks.append(members[torch.randperm(len(members), generator=draw, device=draw.device)[:shots]])
    pick = torch.stack(picks, 1).flatten()  # interleaved classes: c0, c1, ..., c0, c1, ...
    return task.x_train[pick], task.y_train[pick]


def score_and_loss(outputs: torch.Tensor, targets: torch.Tensor, kind: str,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """[score, loss] as one tensor: [accuracy, cross-entropy] or [-MSE, MSE]. vmap-friendly."""
    if kind == "regression":
        mse = F.mse_loss(outputs.reshape(targets.shape), targets)
        return torch.stack([-mse, mse])
    if mask is not None:
        outputs = outputs + mask
    accuracy = (outputs.argmax(-1) == targets).float().mean()
    return torch.stack([accuracy, F.cross_entropy(outputs, targets)])
