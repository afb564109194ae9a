"""Episodic tasks: stream segments that are distributions of tasks, and the episodes drawn from them.

A few-shot stream's task is not one problem but a family of them, from which a meta-learner
draws episodes (a support set to adapt on, a query set to score the adaptation). Such a task
stores its data so that every strategy can still train on it as a plain task:

- family segment (`meta["episodic"] == "family"`, regression, e.g. sinusoids): `x_train` holds
  `functions_per_task * meta["points_per_function"]` rows, function after function (row f*P + p
  is point p of function f); `x_test` holds the held-out functions the same way, with
  `meta["test_points_per_function"]` points each. A non-meta strategy trains on the pooled
  points (the "pretrained" baseline of Finn et al. 2017); meta-learners and the few-shot
  evaluator see (functions, points, ...) through `training_functions` / `held_out_functions`.
- N-way segment (`meta["episodic"] == "classes"`, classification): N classes stored with their
  output slot as the label, so `classes == (0, ..., N-1)` and the model has N outputs. Every
  class keeps the same number of examples. `meta["episode_labels"]` says whether an episode
  deals the classes to the N outputs at random (`"shuffled"`, the usual N-way K-shot protocol:
  a label means nothing across episodes) or keeps the stored slots (`"fixed"`).

A plain task is episodic too: a regression task is a family of one function, a classification
task gives episodes over all its classes with their stored labels.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lifelong.streams.task import Task

# (x_support, y_support, x_query, y_query), each with a leading episode dimension.
Episodes = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
EpisodeSampler = Callable[[int, torch.Generator], Episodes]


def episodic_kind(task: Task) -> str | None:
    """"family", "classes", or None for a plain task."""
    return task.meta.get("episodic")


def training_functions(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression task's training data as (functions, points, ...); a plain task is one function."""
    points = task.meta.get("points_per_function", len(task.x_train))
    return task.x_train.unflatten(0, (-1, points)), task.y_train.unflatten(0, (-1, points))


def held_out_functions(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """A family segment's held-out functions as (functions, points, ...)."""
    points = task.meta["test_points_per_function"]
    return task.x_test.unflatten(0, (-1, points)), task.y_test.unflatten(0, (-1, points))


def episode_sampler(task: Task, shots: int, queries: int, owner: str, *,
                    ways: int | None = None, relabel: bool = False) -> EpisodeSampler:
    """A function drawing `n` episodes of `task` at once: `sample(n, generator) -> Episodes`.

    Regression: each episode is one function, `shots` support and `queries` query points of it
    (disjoint). Classification: `shots` + `queries` examples of each of `ways` classes (None:
    every class of the task), support and query class after class; see `_class_episodes` for
    the labels (`relabel`: always 0..ways-1). The sampler works on the task's device and never
    syncs with it; what can fail (too few examples or classes) fails here, naming `owner`'s
    parameters.
    """
    if task.kind == "regression":
        return _function_episodes(task, shots, queries, owner)
    return _class_episodes(task, shots, queries, owner, ways, relabel)


def _asked(shots: int, queries: int) -> str:
    """The params an episode's size comes from, for error messages."""
    return f"params.shots = {shots}" if queries == 0 else f"params.shots + params.queries = {shots + queries}"


def _first_k(n_rows: int, n_items: int, k: int, draw: torch.Generator) -> torch.Tensor:
    """`k` distinct random indices below `n_items` for each of `n_rows` rows: (n_rows, k)."""
    return torch.rand(n_rows, n_items, generator=draw, device=draw.device).argsort(1)[:, :k]


def _function_episodes(task: Task, shots: int, queries: int, owner: str) -> EpisodeSampler:
    x, y = training_functions(task)
    n_functions, n_points = x.shape[:2]
    if shots + queries > n_points:
        raise ValueError(f"{owner}: {_asked(shots, queries)} points per episode, but the functions of task "
                         f"{task.name!r} have {n_points} training points; lower them"
                         + (" or raise points_per_function in the stream spec" if episodic_kind(task) else ""))

    def sample(n: int, draw: torch.Generator) -> Episodes:
        which = torch.randint(n_functions, (n, 1), generator=draw, device=draw.device)
        points = _first_k(n, n_points, shots + queries, draw)
        xe, ye = x[which, points], y[which, points]  # (n, shots + queries, ...)
        return xe[:, :shots], ye[:, :shots], xe[:, shots:], ye[:, shots:]

    return sample


def _class_episodes(task: Task, shots: int, queries: int, owner: str, ways: int | None,
                    relabel: bool) -> EpisodeSampler:
    """Episodes of `ways` classes; classes may hold different numbers of examples.

    Labels: with all the task's classes, `episode_labels` not "shuffled" and no `relabel`, each
    class keeps its stored label (its output slot). Otherwise the episode's classes, drawn in
    random order, are labelled 0..ways-1: the N-way K-shot protocol, where a label means nothing
    across episodes, and what a learner that classifies among the episode's classes needs.
    """
    n_classes = len(task.classes)
    ways = ways or n_classes
    if ways > n_classes:
        raise ValueError(f"{owner}: params.ways = {ways} but task {task.name!r} has only {n_classes} classes; "
                         "lower ways or leave it unset (all classes of the task)")
    members = [(task.y_train == c).nonzero().flatten() for c in task.classes]  # one sync per task
    for cls, found in zip(task.classes, members):
        if len(found) < shots + queries:
            raise ValueError(f"{owner}: task {task.name!r} has {len(found)} training examples of class {cls}, "
                             f"fewer than {_asked(shots, queries)}; lower them")
    width = max(len(found) for found in members)
    device = task.y_train.device
    table = torch.stack([F.pad(found, (0, width - len(found))) for found in members])  # (classes, width)
    padding = torch.stack([torch.arange(width, device=device) >= len(found) for found in members])
    relabel = relabel or ways < n_classes or task.meta.get("episode_labels") == "shuffled"
    labels = torch.arange(ways, device=device) if relabel else torch.tensor(task.classes, device=device)

    def sample(n: int, draw: torch.Generator) -> Episodes:
        classes = (_first_k(n, n_classes, ways, draw) if relabel
                   else torch.arange(n_classes, device=device).expand(n, n_classes))  # (n, ways)
        keys = torch.rand(n, ways, width, generator=draw, device=draw.device)
        keys = keys.masked_fill(padding[classes], 2.0)  # padding is never among the smallest keys
        picks = table[classes].gather(2, keys.topk(shots + queries, dim=2, largest=False).indices)
        x, y = task.x_train[picks], labels.view(1, ways, 1).expand_as(picks)  # (n, ways, shots + queries, ...)
        return (x[:, :, :shots].flatten(1, 2), y[:, :, :shots].flatten(1, 2),
                x[:, :, shots:].flatten(1, 2), y[:, :, shots:].flatten(1, 2))

    return sample
