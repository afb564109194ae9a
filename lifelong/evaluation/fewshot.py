"""Few-shot evaluation: adapt a copy of the learner on k shots of task j, score on j's test set.

The support set of a task is fixed for the whole lifetime (seeded by run seed and task index),
so every row of the record adapts on the same examples and rows stay comparable.

An episodic task (a family segment or an N-way segment, see `lifelong.streams.episodic`) is
scored on its held-out episodes instead: its "support set" is a `HeldOutEpisodes`, several plain
tasks each with its own support set, and its score is their mean. For a family segment they are
the held-out functions (k of each function's points are the support, the rest its query); for
an N-way segment, `eval_episodes` episodes, each dealing the classes to the outputs as training
episodes do, with k training examples per class as support and the segment's test set as query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lifelong.errors import ConfigError
from lifelong.seeding import generator
from lifelong.streams.episodic import episodic_kind, held_out_functions
from lifelong.streams.task import Task

Support = tuple[torch.Tensor, torch.Tensor]


TASK_CHOICES = "all, seen, seen+next or sample(n) with n >= 1"


class EvaluationSpec(BaseModel):
    """The `evaluation:` section: `standard` scores the learner as it is; `few-shot` adapts first.

    `every` and `tasks` make a schedule for lifetimes where the full matrix costs too much (see
    `lifelong.evaluation.schedule`); cells a schedule skips stay NaN in the record.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["standard", "few-shot"] = "standard"
    shots: int = Field(default=5, ge=1, le=10_000, description="support examples per class (per task for regression)")
    steps: int = Field(default=5, ge=0, le=1_000, description="inner SGD steps on the support set")
    inner_lr: float = Field(default=0.01, gt=0, le=10, description="step size when adapting non-meta strategies")
    every: int = Field(default=1, ge=1, description="evaluate after every k-th task (and always before training "
                                                    "and after the last task)")
    tasks: str = Field(default="all", description="the tasks each evaluation scores: all, seen (trained so far), "
                                                  "seen+next, or sample(n) (n tasks fixed by the stream seed)")
    within_task_every: int = Field(
        default=0, ge=0, description="also score the task being learned on its test set after every k-th training "
                                     "step (0: never): the learning curve that flops_to_reach and samples_to_reach "
                                     "read (lifelong.evaluation.within_task); standard mode only")

    @field_validator("tasks")
    @classmethod
    def _known_task_choice(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value not in ("all", "seen", "seen+next") and not (re.fullmatch(r"sample\(\d+\)", value)
                                                             and int(value[7:-1]) >= 1):
            raise ValueError(f"{value!r} is not a task choice; use {TASK_CHOICES}")
        return value

    @model_validator(mode="after")
    def _within_task_needs_standard_mode(self):
        if self.within_task_every and self.mode != "standard":
            raise ValueError("evaluation.within_task_every scores the task as it is (standard mode); with mode: "
                             "few-shot set it to 0")
        return self

    @property
    def sample_size(self) -> int | None:
        """n of `tasks: sample(n)`, else None."""
        return int(self.tasks[7:-1]) if self.tasks.startswith("sample(") else None

    def check_stream(self, n_tasks: int) -> None:
        """Raise when the schedule asks for more tasks than the stream has."""
        if self.sample_size is not None and self.sample_size > n_tasks:
            raise ValueError(f"evaluation.tasks: sample({self.sample_size}) asks for more tasks than the stream's "
                             f"{n_tasks}; lower n or use tasks: all")


@dataclass(frozen=True)
class HeldOutEpisodes:
    """The few-shot evaluation of an episodic task: plain tasks whose training split is exactly
    their support set and whose test split is their query set. The task scores their mean."""

    tasks: tuple[Task, ...]

    @property
    def supports(self) -> list[Support]:
        return [(episode.x_train, episode.y_train) for episode in self.tasks]


def support_set(task: Task, shots: int, seed: int) -> Support | HeldOutEpisodes:
    """`shots` training examples per class of the task (or `shots` points for regression).

    For an episodic task, its held-out episodes with their support sets (see the module doc).
    """
    if episodic_kind(task) == "family":
        return _held_out_functions(task, shots, seed)
    if episodic_kind(task) == "classes":
        return _held_out_class_episodes(task, shots, seed)
    return _draw_support(task, shots, generator(seed, "eval", task.id, device=task.y_train.device))


def _draw_support(task: Task, shots: int, draw: torch.Generator) -> Support:
    if task.kind == "regression":
        if len(task.x_train) < shots:
            raise ConfigError(f"task {task.name!r} has {len(task.x_train)} training points, fewer than "
                              f"evaluation.shots={shots}; lower evaluation.shots")
        pick = torch.randperm(len(task.x_train), generator=draw, device=draw.device)[:shots]
        return task.x_train[pick], task.y_train[pick]
    picks = []
    for cls in task.classes:
        members = (task.y_train == cls).nonzero().flatten()
        if len(members) < shots:
            raise ConfigError(f"task {task.name!r} has {len(members)} training examples of class {cls}, fewer than "
                              f"evaluation.shots={shots}; lower evaluation.shots")
        picks.append(members[torch.randperm(len(members), generator=draw, device=draw.device)[:shots]])
    pick = torch.stack(picks, 1).flatten()  # interleaved classes: c0, c1, ..., c0, c1, ...
    return task.x_train[pick], task.y_train[pick]


def _held_out_functions(task: Task, shots: int, seed: int) -> HeldOutEpisodes:
    """One episode per held-out function: `shots` random points of it as support, the rest as query."""
    x, y = held_out_functions(task)
    n_functions, n_points = x.shape[:2]
    if shots >= n_points:
        raise ConfigError(f"task {task.name!r}: its held-out functions have {n_points} points, so "
                          f"evaluation.shots={shots} leaves no query point; lower evaluation.shots or raise "
                          "test_points_per_function in the stream spec")
    draw = generator(seed, "eval", task.id, device=x.device)
    order = torch.rand(n_functions, n_points, generator=draw, device=x.device).argsort(1)
    rows = torch.arange(n_functions, device=x.device).unsqueeze(1)
    xs, ys = x[rows, order], y[rows, order]
    return HeldOutEpisodes(tuple(
        Task(task.id, f"{task.name} function {f + 1}", "regression", xs[f, :shots], ys[f, :shots],
             xs[f, shots:], ys[f, shots:], meta={"episode_of": task.id})
        for f in range(n_functions)))


def _held_out_class_episodes(task: Task, shots: int, seed: int) -> HeldOutEpisodes:
    """`eval_episodes` episodes: the classes dealt to the outputs like training episodes deal them."""
    ways = len(task.classes)
    episodes = []
    for e in range(task.meta["eval_episodes"]):
        draw = generator(seed, "eval", task.id, e, device=task.y_train.device)
        if task.meta["episode_labels"] == "shuffled":
            slot = torch.randperm(ways, generator=draw, device=draw.device)
        else:
            slot = torch.arange(ways, device=draw.device)
        dealt = Task(task.id, f"{task.name} episode {e + 1}", "classification", task.x_train, slot[task.y_train],
                     task.x_test, slot[task.y_test], classes=task.classes, meta={"episode_of": task.id})
        x_support, y_support = _draw_support(dealt, shots, draw)
        episodes.append(replace(dealt, x_train=x_support, y_train=y_support))
    return HeldOutEpisodes(tuple(episodes))


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
