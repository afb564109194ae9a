"""Episodic memories of past training examples, shared by the replay-based strategies.

A `ReservoirBuffer` is a reservoir sample (Vitter 1985, Algorithm R) of every example offered to
it over the lifetime: the example at lifetime position i < capacity takes slot i, a later one
draws a slot in [0, i] and replaces that slot's content when the draw falls inside the buffer.
`replay` and `agem` offer a task's examples when the task ends (`add_task`); `der` offers each
minibatch as it trains (`reservoir_slots` + `write`). Fields (inputs, targets, and whatever a
strategy keeps with them: task ids, logits, output masks) are allocated at the first write.
"""

from __future__ import annotations

import numpy as np
import torch

from lifelong.errors import ConfigError
from lifelong.seeding import derive_seed
from lifelong.streams.task import Stream, Task


class BufferTooLargeError(ConfigError):
    """A memory the stream's training data can never fill; the message names the strategy and the field."""


def reservoir_slots(rng: np.random.Generator, seen: int, count: int, capacity: int) -> np.ndarray:
    """Algorithm R's slot for each of `count` arrivals after `seen` earlier ones (>= capacity: not kept).

    The draws are taken in one call, the same numbers as one call per arrival.
    """
    slots = seen + np.arange(count)
    late = slots >= capacity
    slots[late] = rng.integers(0, slots[late] + 1)
    return slots


def last_writes(slots: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of the arrivals that stay: kept by the reservoir and not overwritten later in their
    group (a group is written at once, so when several of its arrivals hit one slot the last stays)."""
    key = slots if groups is None else groups.astype(np.int64) * (int(slots.max()) + 1) + slots
    last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]
    return np.sort(last)


class ReservoirBuffer:
    """A bounded uniform sample of every training example offered, with per-example fields."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.seen = 0
        self.fields: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.fields[name]

    @property
    def filled(self) -> int:
        return min(self.seen, self.capacity)

    def add_task(self, task: Task, seed: int, **shared: torch.Tensor) -> None:
        """Offer the task's training examples in a seeded random order, after training on it.

        `shared` fields hold one value for all the task's examples (e.g. its output mask)."""
        rng = np.random.default_rng(derive_seed(seed, "buffer", task.id))
        order = rng.permutation(len(task.x_train))
        slots = reservoir_slots(rng, self.seen, len(order), self.capacity)
        self.seen += len(order)
        stay = last_writes(slots)
        stay = stay[slots[stay] < self.capacity]
        which = torch.from_numpy(order[stay]).to(task.x_train.device)
        self.write(torch.from_numpy(slots[stay]), x=task.x_train[which], y=task.y_train[which],
                   task=torch.full((len(which),), task.id, dtype=torch.long),
                   **{name: value.expand(len(which), *value.shape) for name, value in shared.items()})

    def write(self, slots: torch.Tensor, **values: torch.Tensor) -> None:
        """Store `values[name][k]` in slot `slots[k]` of each field (no sync: indices are given)."""
        for name, value in values.items():
            if name not in self.fields:
                self.fields[name] = value.new_zeros((self.capacity, *value.shape[1:]))
            field = self.fields[name]
            field[slots.to(field.device)] = value.to(field.device)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n slot indices drawn uniformly, with replacement, from the filled part."""
        return torch.randint(self.filled, (n,), generator=generator, device=generator.device)

    def state_dict(self) -> dict:
        return {"seen": self.seen, **{f"buffer_{name}": value for name, value in self.fields.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.seen = int(state["seen"])
        self.fields = {key[len("buffer_"):]: value for key, value in state.items()
                       if key.startswith("buffer_") and value is not None}


def check_fills(stream: Stream, capacity: int, strategy: str, field: str) -> None:
    """Refuse, before training, a memory larger than all the training data the stream gives.

    Tasks are counted in order until they reach `capacity`, so a buffer the first task fills
    builds nothing more than the run builds first anyway.
    """
    total = 0
    for task in stream.tasks:
        total += len(task.y_train)
        if total >= capacity:
            return
    raise BufferTooLargeError(
        f"{strategy}: params.{field}={capacity} is more than the {total} training examples stream "
        f"{stream.name!r} gives over its {len(stream)} tasks, so the memory could never fill; set "
        f"params.{field} to at most {total}")
