"""The lifetime record: what every metric and report is computed from.

`scores[i, j]` is the score on task j's test set after training tasks 1..i (row 0: before any
training), higher is better (accuracy, or negative MSE for regression). `losses` is the test
loss in the same layout. Per-task wall time and peak memory are kept beside them, and what each
task's training and each evaluation cost (`task_cost`, `eval_cost`: see lifelong.cost.meter). Under
few-shot evaluation `curves[i, j, s]` is the score after s adaptation steps (scores = last step).
`within_task[i]` is task i's learning curve during its training, when `evaluation.within_task_every`
asks for one: [step, samples, flops, score] points (lifelong.evaluation.within_task).
Cells an evaluation schedule skipped (`evaluation.every`, `evaluation.tasks`) are NaN, so
`completed`, the number of tasks trained, is kept explicitly rather than read off the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lifelong.evaluation.correctness import RowCorrectness


@dataclass
class LifetimeRecord:
    strategy: str
    seed: int
    task_names: list[str]
    kind: str
    scores: np.ndarray = None
    losses: np.ndarray = None
    train_seconds: np.ndarray = None
    peak_memory_mb: np.ndarray = None
    train_stats: list[dict] = field(default_factory=list)
    curves: np.ndarray | None = None
    task_cost: list[dict] = field(default_factory=list)  # one per trained task; {} with `cost: off`
    eval_cost: dict[int, dict] = field(default_factory=dict)  # row of R -> its evaluation's cost
    completed: int = 0  # tasks trained and (as the schedule says) evaluated; set by the orchestrator
    correct: RowCorrectness | None = None  # the last evaluated row's per-example correctness (classification)
    flips: np.ndarray | None = None  # prediction-flip counts read back from the record log (see flips.py)
    within_task: dict[int, list[list[float]]] = field(default_factory=dict)  # task -> its learning curve
    l2m: dict | None = None  # L2M metrics of this lifetime, read back from the run's l2m/ folder (lifelong.l2m)

    def __post_init__(self) -> None:
        n = len(self.task_names)
        for name, shape in (("scores", (n + 1, n)), ("losses", (n + 1, n)), ("train_seconds", (n,)),
                            ("peak_memory_mb", (n,))):
            if getattr(self, name) is None:
                setattr(self, name, np.full(shape, np.nan))

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def score_name(self) -> str:
        return "neg_mse" if self.kind == "regression" else "accuracy"

    def to_frame(self, rows: range | None = None) -> pd.DataFrame:
        """Long form: one row per (after_task, eval_task); after_task 0 = before training. `rows`: only
        these rows of R (default all)."""
        rows = range(self.n_tasks + 1) if rows is None else rows
        n = self.n_tasks
        after, evaluated = np.meshgrid(np.asarray(rows), np.arange(n), indexing="ij")
        return pd.DataFrame({
            "strategy": self.strategy, "seed": self.seed,
            "after_task": after.ravel(), "eval_task": evaluated.ravel(),
            "eval_task_name": np.array(self.task_names)[evaluated.ravel()],
            "score": self.scores[rows.start:rows.stop].ravel(), "loss": self.losses[rows.start:rows.stop].ravel(),
            "score_name": self.score_name,
        })

    def curves_frame(self) -> pd.DataFrame | None:
        """Long form of the adaptation curves: one row per (after_task, eval_task, step)."""
        if self.curves is None:
            return None
        after, evaluated, step = np.meshgrid(*(np.arange(n) for n in self.curves.shape), indexing="ij")
        return pd.DataFrame({"strategy": self.strategy, "seed": self.seed, "after_task": after.ravel(),
                             "eval_task": evaluated.ravel(), "step": step.ravel(), "score": self.curves.ravel()})

    def within_task_frame(self) -> pd.DataFrame | None:
        """Long form of the within-task learning curves: one row per (task, probe)."""
        if not self.within_task:
            return None
        rows = [[task, *point] for task, points in sorted(self.within_task.items()) for point in points]
        frame = pd.DataFrame(rows, columns=["task", "step", "samples", "flops", "score"])
        frame.insert(0, "seed", self.seed)
        frame.insert(0, "strategy", self.strategy)
        return frame

    def to_state(self) -> dict:
        """Primitives and arrays only, for checkpoints loaded with weights_only=True."""
        return {"strategy": self.strategy, "seed": self.seed, "task_names": self.task_names, "kind": self.kind,
                "scores": self.scores.tolist(), "losses": self.losses.tolist(),
                "train_seconds": self.train_seconds.tolist(), "peak_memory_mb": self.peak_memory_mb.tolist(),
                "train_stats": self.train_stats, "task_cost": self.task_cost,
                "eval_cost": {str(k): v for k, v in self.eval_cost.items()}, "curves": None if self.curves is None else self.curves.tolist(),
                "within_task": {str(k): v for k, v in self.within_task.items()}, "completed": self.completed}

    @classmethod
    def from_state(cls, state: dict) -> LifetimeRecord:
        arrays = {k: np.array(state[k], dtype=float) for k in ("scores", "losses", "train_seconds", "peak_memory_mb")}
        curves = None if state.get("curves") is None else np.array(state["curves"], dtype=float)
        return cls(state["strategy"], state["seed"], list(state["task_names"]), state["kind"], **arrays,
                   train_stats=list(state["train_stats"]), curves=curves,
                   task_cost=list(state.get("task_cost", [])),
                   eval_cost={int(k): v for k, v in state.get("eval_cost", {}).items()},
                   within_task={int(k): v for k, v in state.get("within_task", {}).items()},
                   completed=int(state["completed"]))
