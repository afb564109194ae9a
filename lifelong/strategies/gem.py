"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual
Learning", NeurIPS).

Each task leaves an episodic memory of `memory_per_task` of its training examples (a seeded
random sample; a task with fewer keeps them all). At every step the gradient g_k of each past
task's memory loss is taken at the current parameters (a forward and backward pass over that
task's memory alone, as the paper's code does: a step costs O(tasks seen), where one backward pass
batched over the tasks would cost O(tasks seen^2) through the other tasks' zero rows), and when
the current gradient g conflicts with any of them (G g < 0) it is replaced by the closest gradient
that conflicts with none, through the dual quadratic program of the paper:
min_v 1/2 v' (G G' + eps I) v + g' G' v subject to v >= margin, then g~ = G' v + g (margin = the
paper's "memory strength"). The program is solved by `quadprog` (Goldfarb & Idnani's dual method),
an optional dependency: `pip install 'lifelong[gem]'`.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lifelong.errors import UserError
from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.strategies.buffers import BufferTooLargeError
from lifelong.streams.task import Task
from lifelong.training import fit, task_loss

INSTALL = "pip install 'lifelong[gem]' (or: pip install quadprog)"


class MissingSolverError(UserError):
    """A strategy needs a solver package that is not installed; the message gives the pip command."""


class GEMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory_per_task: int = Field(default=256, ge=1, description="examples kept from each task")
    margin: float = Field(default=0.5, ge=0, description="memory strength: lower bound of the dual variables")
    eps: float = Field(default=1e-3, gt=0, description="added to the diagonal of G G' so the program is strictly convex")


class GEM(Strategy):
    Params = GEMParams

    def setup(self, ctx) -> None:
        solver()
        first = ctx.stream.tasks[0]
        if self.params.memory_per_task > len(first.y_train):
            raise BufferTooLargeError(
                f"gem: params.memory_per_task={self.params.memory_per_task} is more than the {len(first.y_train)} "
                f"training examples of task {first.name!r}, so every memory would hold its whole task; set "
                f"params.memory_per_task to at most {len(first.y_train)}")
        super().setup(ctx)
        self.memories: list[dict] = []  # per past task: x, y, and its output mask (None without task labels)

    def learn(self, task: Task) -> dict:
        mask = self.ctx.mask(task)
        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                   project=self._projection(task) if self.memories else None)
        rng = np.random.default_rng(derive_seed(self.ctx.seed, "buffer", task.id))
        keep = torch.from_numpy(rng.permutation(len(task.y_train))[:self.params.memory_per_task]).to(task.x_train.device)
        self.memories.append({"x": task.x_train[keep], "y": task.y_train[keep], "mask": mask})
        return {"train_loss": loss}

    def _projection(self, task: Task):
        params = list(self.model.parameters())
        quadprog = solver()

        def memory_gradient(memory: dict) -> torch.Tensor:
            loss = task_loss(self.model(memory["x"]), memory["y"], task.kind, memory["mask"])
            return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

        def project() -> None:
            G = torch.stack([memory_gradient(memory) for memory in self.memories])
            with torch.no_grad():
                g = torch.cat([p.grad.reshape(-1) for p in params])
                if bool((G @ g < 0).any()):  # GEM decides on the host: the one sync per step
                    projected = project_to_cone(g, G, self.params.margin, self.params.eps, quadprog)
                    torch._foreach_copy_([p.grad for p in params],
                                         [part.view_as(p) for part, p in zip(projected.split([p.numel() for p in params]), params)])

        return project

    def stored_examples(self) -> int:
        return sum(len(memory["y"]) for memory in self.memories)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "memories": self.memories}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.memories = state["memories"]


def project_to_cone(g: torch.Tensor, G: torch.Tensor, margin: float, eps: float, quadprog=None) -> torch.Tensor:
    """The gradient G' v + g, v solving the dual program min 1/2 v'(G G' + eps I)v + g'G'v, v >= margin.

    Computed in float64 on the host, as the paper's code does; returned in g's dtype and device.
    """
    quadprog = quadprog or solver()
    memories = G.detach().double().cpu().numpy()
    gradient = g.detach().double().cpu().numpy()
    k = len(memories)
    P = memories @ memories.T
    P = 0.5 * (P + P.T) + eps * np.eye(k)
    v = quadprog.solve_qp(P, -(memories @ gradient), np.eye(k), np.full(k, margin))[0]
    return torch.from_numpy(v @ memories + gradient).to(g.dtype).to(g.device)


def solver():
    """The `quadprog` module, or a clear error with the pip command when it is not installed."""
    try:
        import quadprog
    except ImportError:
        raise MissingSolverError(f"gem solves its quadratic program with the quadprog package, which is not "
                                 f"installed; install it with: {INSTALL}") from None
    return quadprog
