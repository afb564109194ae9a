"""Averaged Gradient Episodic Memory (Chaudhry, Ranzato, Rohrbach & Elhoseiny 2019, "Efficient
Lifelong Learning with A-GEM", ICLR).

GEM's one constraint per past task is relaxed to one on average: at every step a reference
gradient g_ref is taken on a minibatch drawn from the episodic memory, and when the current
gradient g points against it (g . g_ref < 0) g is projected onto the half-space where the
memory's loss does not grow: g - (g . g_ref / g_ref . g_ref) g_ref. The memory is the reservoir
buffer `replay` uses (a uniform sample of every past task), filled when a task ends; each stored
example keeps its own task's output mask. The projection is computed without a branch
(min(g . g_ref, 0)), so the device never waits on the host.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.strategies.buffers import ReservoirBuffer, check_fills
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss


class AGEMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buffer_size: int = Field(default=200, ge=1, description="episodic memory: examples kept over the lifetime")
    memory_batch_size: int = Field(default=64, ge=1, description="memory examples behind each reference gradient")


class AGEM(Strategy):
    Params = AGEMParams

    def setup(self, ctx) -> None:
        super().setup(ctx)
        check_fills(ctx.stream, self.params.buffer_size, "agem", "buffer_size")
        self.memory = ReservoirBuffer(self.params.buffer_size)

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        project = None if self.memory.filled == 0 else self._projection(task)
        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                   project=project)
        self.memory.add_task(task, self.ctx.seed, **({} if mask is None else {"mask": mask}))
        return {"train_loss": loss}

    def _projection(self, task: Task):
        draw = torch.Generator(device=self.ctx.device).manual_seed(derive_seed(self.ctx.seed, "buffer", task.id, 1))
        params = list(self.model.parameters())
        masks = self.memory.fields.get("mask")

        def project() -> None:
            pick = self.memory.sample(self.params.memory_batch_size, draw)
            out = self.model(self.memory["x"][pick])
            ref_loss = task_loss(out, self.memory["y"][pick], task.kind, None if masks is None else masks[pick])
            reference = torch.autograd.grad(ref_loss, params)
            with torch.no_grad():
                grads = [p.grad for p in params]
                project_onto_half_space(grads, reference)

        return project

    def stored_examples(self) -> int:
        return self.memory.filled

    def state_dict(self) -> dict:
        return {**super().state_dict(), **self.memory.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.memory.load_state_dict(state)


def project_onto_half_space(grads: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    """g <- g - min(g . r, 0) / (r . r) * r, in place over a model's gradient tensors."""
    dot = sum(torch.dot(g.reshape(-1), r.reshape(-1)) for g, r in zip(grads, reference))
    norm = sum(torch.dot(r.reshape(-1), r.reshape(-1)) for r in reference)
    scale = dot.clamp(max=0) / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    torch._foreach_sub_(grads, torch._foreach_mul(reference, scale))
