"""FTML: Follow the Meta Leader (Finn, Rajeswaran, Kakade & Levine, ICML 2019, "Online Meta-Learning",
arXiv:1902.08438).

Online meta-learning as follow-the-leader over meta-objectives: at round t the learner keeps the
data of every task seen so far and takes the MAML initialisation that is best for all of them,
`w_t+1 = argmin_w sum_k<=t  L_k(U_k(w))`, where U_k adapts w to task k by a few SGD steps on its
data; a new task is then met from that initialisation. Here, after each task of the stream:

1. its training data joins the task buffer (all of it: memory grows with the stream);
2. `meta_steps` MAML iterations, each on `meta_batch` episodes whose tasks are drawn uniformly
   from the buffer, an episode being a support/query split of that task's stored data as the
   MAML strategies draw it; episodes of tasks that share a shape and an output mask are adapted
   together under vmap.

Prediction, consistent with the engine's MAML strategies: few-shot evaluation adapts the
initialisation on the task's support set (`inner_lr`, `evaluation.steps`); standard evaluation
scores the initialisation itself, except for a task the learner has seen on a stream that gives
task labels (task-incremental): then, as FTML's U_t, it adapts to that task's stored data first
(`inner_steps` full-batch steps). Resuming rebuilds the buffer from the stream (tasks are
deterministic in the stream seed), so a checkpoint holds the task ids, not their data.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import Tensor

from lifelong import adapt
from lifelong.cost import flops
from lifelong.seeding import generator
from lifelong.strategies.base import Predictor, StrategyContext
from lifelong.strategies.maml import MAML, MAMLParams
from lifelong.streams.episodic import episode_sampler
from lifelong.streams.task import Task


class FTML(MAML):
    """MAML over a buffer of every task seen; task-specific adaptation from its initialisation."""

    Params = MAMLParams

    def setup(self, ctx: StrategyContext) -> None:
        super().setup(ctx)
        self.buffer: dict[int, Task] = {}

    def learn(self, task: Task) -> dict:
        self.buffer[task.id] = task
        seen = list(self.buffer.values())
        samplers = [episode_sampler(t, *self.episode_sizes(), type(self).__name__) for t in seen]
        groups: dict[tuple, list[int]] = {}  # tasks whose episodes stack into one vmapped meta-loss
        for k, t in enumerate(seen):
            groups.setdefault(_episode_key(t), []).append(k)
        loss_fns = {key: self._loss_fn(seen[members[0]]) for key, members in groups.items()}
        p = self.params
        choices = torch.randint(len(seen), (p.meta_steps, p.meta_batch),
                                generator=generator(self.ctx.seed, "episode", task.id, 1))
        draw = generator(self.ctx.seed, "episode", task.id, device=self.ctx.device)
        total = torch.zeros((), device=self.ctx.device)
        with flops.loop():
            for counts in torch.stack([torch.bincount(row, minlength=len(seen)) for row in choices]).tolist():
                batch = {}  # group key -> its episodes of this meta-step
                for key, members in groups.items():
                    drawn = [samplers[k](counts[k], draw) for k in members if counts[k]]
                    if drawn:
                        batch[key] = [torch.cat(part) for part in zip(*drawn)]
                work = tuple((key, flops.episode_shapes(episodes)) for key, episodes in batch.items())
                with flops.step(work, sum(flops.episode_examples(episodes) for episodes in batch.values())):
                    total += self._meta_step(batch, loss_fns)
        mean = total / p.meta_steps
        adapt.check_finite(mean, f"meta-training loss on task {task.name!r}", fix=self._non_finite_fix())
        return {"meta_loss": float(mean), "tasks_remembered": len(seen)}

    def _meta_step(self, batch: dict[tuple, list[Tensor]], loss_fns: dict) -> Tensor:
        """One MAML update on the episodes of every group, weighted by their share of the meta-batch."""
        loss = 0.0
        for key, episodes in batch.items():
            with self.autocast():
                loss = loss + len(episodes[0]) / self.params.meta_batch * adapt.meta_loss(
                    self.model, adapt.params_of(self.model), *episodes, loss_fn=loss_fns[key],
                    first_order=self.first_order, **self._inner_loop()).float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _adapts_to(self, task: Task) -> bool:
        return task.label is not None and task.id in self.buffer

    def predictor_key(self, task: Task) -> Hashable:
        return task.id if self._adapts_to(task) else None

    def predictor(self, task: Task, support: tuple[Tensor, Tensor] | None = None) -> Predictor:
        if support is None and self._adapts_to(task):
            stored = self.buffer[task.id]
            support, steps = (stored.x_train, stored.y_train), self.params.inner_steps
            adapted = self.adapted_params(task, support, steps)
            return lambda x: adapt.forward(self.model, adapted, x)
        return super().predictor(task, support)

    def stored_examples(self) -> int:
        return sum(len(task.x_train) for task in self.buffer.values())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "buffer_tasks": list(self.buffer)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer = {i: self.ctx.stream.tasks[i].to(self.ctx.device) for i in state["buffer_tasks"]}


def _episode_key(task: Task) -> tuple:
    """Tasks with equal keys give episodes of one shape under one loss (kind, output mask, classes)."""
    return task.kind, (task.label, task.classes) if task.label is not None else None, len(task.classes)
