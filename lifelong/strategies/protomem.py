"""Prototype memory: nearest-prototype classification over every class seen, built on prototypical
networks (Snell et al. 2017, "Prototypical Networks for Few-shot Learning").

A class's prototype is the mean embedding of its training examples in the task (or of
`prototype_shots` of them), added without a gradient step; a query's logit for class c is
minus the squared Euclidean distance to c's nearest prototype, -inf for classes without one. So
it is class-incremental without task labels; task-IL masks still apply in the evaluator.
Prototypes are keyed by (class, task): a class met again in a later task (domain-incremental or
recurring streams) gets another prototype, and the nearest one wins.

Meta-training (`meta_train: true`) trains the embedding on each task with the prototypical loss
on N-way K-shot episodes of that task. Few-shot evaluation builds the prototypes of the task's
classes from its support set, with no steps, so the curve is flat.

Memory bound (`memory_size` prototypes): when full, `merge` (default) repeatedly replaces the
closest pair of same-class prototypes by their count-weighted mean (the mean of all the examples
both summarise), so a class keeps at least one prototype while there is room; if every class is
down to one, the oldest prototype is evicted and its class is forgotten. `evict_oldest` drops
the oldest prototypes first (first in, first out).

Drift: a stored prototype lives in the embedding of the moment it was computed; meta-training on
later tasks moves that embedding. `drift: compensate` (default) keeps a small class-balanced
exemplar memory and, after each task's meta-training, shifts every prototype of class c by how
far the mean embedding of c's exemplars moved (new minus old network). A prototype that is the
mean of exactly the exemplars thus becomes their mean under the new network; a full-data
prototype keeps its precision and follows the drift to first order (semantic drift compensation
in the spirit of Yu et al. 2020, measured on stored exemplars instead of current data). Classes
whose exemplars were all displaced are left as they are. `drift: freeze` keeps prototypes as
computed. Without meta-training the embedding never changes, so there is no drift and no
exemplar is stored.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from lifelong.seeding import generator
from lifelong.strategies.base import Predictor
from lifelong.strategies.episodes import EpisodicParams, EpisodicStrategy, class_means, embed, squared_distances
from lifelong.streams.task import Task


class ProtoMemParams(EpisodicParams):
    meta_train: bool = Field(default=False, description="train the embedding on each task with the prototypical loss")
    memory_size: int = Field(default=1000, ge=1, le=10_000_000, description="prototypes kept at most")
    when_full: Literal["merge", "evict_oldest"] = "merge"
    prototype_shots: int | None = Field(default=None, ge=1,
                                        description="examples per class a new prototype averages; None: all")
    drift: Literal["compensate", "freeze"] = "compensate"
    exemplars: int = Field(default=200, ge=1, le=10_000_000,
                           description="drift compensation: exemplars kept, split evenly over classes seen")


class Prototypes:
    """A bounded set of prototypes: rows of `vectors`, with their class, example count and task."""

    def __init__(self, capacity: int, when_full: str, dim: int, device: torch.device):
        self.capacity, self.when_full = capacity, when_full
        self.vectors = torch.zeros(0, dim, device=device)
        self.classes = torch.zeros(0, dtype=torch.long, device=device)
        self.counts = torch.zeros(0, device=device)
        self.tasks = torch.zeros(0, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.classes)

    def add(self, vectors: torch.Tensor, classes: torch.Tensor, counts: torch.Tensor, task_id: int) -> None:
        self.vectors = torch.cat([self.vectors, vectors])
        self.classes = torch.cat([self.classes, classes])
        self.counts = torch.cat([self.counts, counts])
        self.tasks = torch.cat([self.tasks, torch.full_like(classes, task_id)])
        while len(self) > self.capacity:
            pair = self._closest_same_class_pair() if self.when_full == "merge" else None
            if pair is None:
                self._keep(torch.arange(1, len(self), device=self.classes.device))  # rows are oldest first
            else:
                self._merge(*pair)

    def _closest_same_class_pair(self) -> tuple[int, int] | None:
        distances = squared_distances(self.vectors, self.vectors)
        same = (self.classes[:, None] == self.classes[None, :]).triu(diagonal=1)
        if not bool(same.any()):
            return None
        flat = int(distances.masked_fill(~same, float("inf")).argmin())
        return divmod(flat, len(self))

    def _merge(self, i: int, j: int) -> None:
        """Row i becomes the count-weighted mean of rows i and j, with the newer task; row j goes."""
        n_i, n_j = self.counts[i], self.counts[j]
        self.vectors[i] = (n_i * self.vectors[i] + n_j * self.vectors[j]) / (n_i + n_j)
        self.counts[i] = n_i + n_j
        self.tasks[i] = torch.maximum(self.tasks[i], self.tasks[j])
        self._keep(torch.tensor([k for k in range(len(self)) if k != j], device=self.classes.device))

    def _keep(self, rows: torch.Tensor) -> None:
        self.vectors, self.classes = self.vectors[rows], self.classes[rows]
        self.counts, self.tasks = self.counts[rows], self.tasks[rows]

    def shift(self, per_class: torch.Tensor, known: torch.Tensor) -> float:
        """Move each prototype of class c by `per_class[c]` where `known[c]`; the mean shift length."""
        moves = per_class[self.classes] * known[self.classes].unsqueeze(1)
        self.vectors = self.vectors + moves
        return float(moves.norm(dim=1).mean()) if len(self) else 0.0

    def logits(self, z: torch.Tensor, n_outputs: int) -> torch.Tensor:
        """-squared distance to each class's nearest prototype: (N, n_outputs), -inf without one."""
        scores = -squared_distances(z, self.vectors)
        out = torch.full((len(z), n_outputs), float("-inf"), device=z.device, dtype=z.dtype)
        return out.scatter_reduce(1, self.classes.expand(len(z), -1), scores, "amax")

    def state_dict(self) -> dict:
        return {"vectors": self.vectors, "classes": self.classes, "counts": self.counts, "tasks": self.tasks}

    def load_state_dict(self, state: dict) -> None:
        self.vectors, self.classes = state["vectors"], state["classes"]
        self.counts, self.tasks = state["counts"], state["tasks"]


class PrototypeMemory(EpisodicStrategy):
    Params = ProtoMemParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.prototypes = Prototypes(self.params.memory_size, self.params.when_full, self.embedding_dim, ctx.device)
        shots = self.params.prototype_shots
        for task in ctx.stream.tasks if shots else ():
            counts = torch.bincount(task.y_train.cpu(), minlength=max(task.classes) + 1)[list(task.classes)]
            if int(counts.min()) < shots:
                raise ValueError(f"protomem: params.prototype_shots={shots} but task {task.name!r} has "
                                 f"{int(counts.min())} training examples of a class; lower prototype_shots")

    @property
    def meta_trains(self) -> bool:
        return self.params.meta_train and self.params.episodes > 0

    @property
    def keeps_exemplars(self) -> bool:
        return self.meta_trains and self.params.drift == "compensate"

    def support_logits(self, z_support, y_support, z_query, n_classes):
        """Prototypical-network logits: -squared distance to the class means, -inf for absent classes."""
        means, counts = class_means(z_support, y_support, n_classes)
        scores = -squared_distances(z_query, means)
        return scores.masked_fill(counts == 0, float("-inf"))

    def learn(self, task: Task) -> dict:
        stats = {}
        if self.meta_trains:
            before = self._exemplar_means() if len(self.exemplars) else None
            stats["episode_loss"] = self.meta_train(task)
            if before is not None:
                after = self._exemplar_means()
                stats["drift"] = self.prototypes.shift(after[0] - before[0], after[1] > 0)
        if self.keeps_exemplars:
            self.exemplars.add(task.x_train, task.y_train,
                               generator(self.ctx.seed, "buffer", task.id, device=self.ctx.device))
        self.prototypes.add(*self._task_prototypes(task), task.id)
        stats["prototypes"] = len(self.prototypes)
        return stats

    @torch.no_grad()
    def _exemplar_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.net.eval()
        return class_means(embed(self.net["embed"], self.exemplars.x), self.exemplars.y, self.ctx.stream.n_outputs)

    @torch.no_grad()
    def _task_prototypes(self, task: Task) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(vectors, classes, counts) of the task's classes, from the current embedding."""
        self.net.eval()
        x, y = task.x_train, task.y_train
        if self.params.prototype_shots:
            draw = generator(self.ctx.seed, "buffer", task.id, 1, device=self.ctx.device)
            keys = torch.rand(len(y), generator=draw, device=self.ctx.device)
            pick = torch.cat([(y == c).nonzero().flatten()[keys[y == c].argsort()[:self.params.prototype_shots]]
                              for c in task.classes])
            x, y = x[pick], y[pick]
        means, counts = class_means(embed(self.net["embed"], x), y, self.ctx.stream.n_outputs)
        classes = torch.tensor(task.classes, device=self.ctx.device)
        return means[classes], classes, counts[classes]

    @torch.no_grad()
    def predictor(self, task: Task, support: tuple[torch.Tensor, torch.Tensor] | None = None) -> Predictor:
        """Nearest prototype over every class seen (or over the support set's classes when given)."""
        if support is not None:
            return super().predictor(task, support)
        self.net.eval()
        n_outputs, prototypes = self.ctx.stream.n_outputs, self.prototypes
        if len(prototypes) == 0:
            return lambda x: torch.zeros(len(x), n_outputs, device=x.device)
        return lambda x: prototypes.logits(embed(self.net["embed"], x), n_outputs)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prototypes": self.prototypes.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prototypes.load_state_dict(state["prototypes"])
