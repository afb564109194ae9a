"""Progress on the terminal: a rich bar when interactive, one plain line per task otherwise."""

from __future__ import annotations

import numpy as np

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lifelong.callbacks import Callback


class ProgressDisplay(Callback):
    """One bar for the whole run (every strategy x seed x task)."""

    def __init__(self, total_tasks: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=True)
        self.bar_id = self.bar.add_task("", total=total_tasks)
        if self.interactive:
            self.bar.start()

    def on_task_start(self, task, record) -> None:
        self.bar.update(self.bar_id, description=f"{record.strategy} seed {record.seed}: {task.name}")

    def on_task_end(self, task, record, strategy) -> None:
        self.bar.advance(self.bar_id)
        if not self.interactive:
            seen = record.scores[task.id + 1, :task.id + 1]
            scored = seen[~np.isnan(seen)]  # an evaluation schedule may skip the row or some tasks
            summary = f"{record.score_name} seen={scored.mean():.4f}" if len(scored) else "not evaluated"
            self.console.print(f"[{record.strategy} seed {record.seed}] {task.name}: {summary} "
                               f"({record.train_seconds[task.id]:.2f}s)", highlight=False, markup=False)

    def close(self) -> None:
        if self.interactive:
            self.bar.stop()
