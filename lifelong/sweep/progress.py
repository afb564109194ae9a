"""One progress display for a whole sweep: runs done / running / failed and an ETA.

A rich bar on a terminal; one plain line per finished run otherwise (logs, CI). The ETA is the wall time
per finished run so far times the runs left: with N runs in parallel it already counts the parallelism.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lifelong.sweep.job import RunOutcome


class SweepProgress:
    def __init__(self, total: int, skipped: int, slots: int, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.total, self.slots = total, slots
        self.done, self.failed, self.started = skipped, 0, time.perf_counter()
        self.finished_here = 0
        self.interactive = self.console.is_terminal
        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[state]}"),
                            TimeElapsedColumn(), console=self.console, transient=True)
        self.bar_id = self.bar.add_task("", total=total, completed=skipped, state=self.state())
        if self.interactive:
            self.bar.start()
        if skipped:
            self.console.print(f"{skipped} of {total} runs already finished: skipped", highlight=False, markup=False)

    @property
    def running(self) -> int:
        return min(self.slots, self.total - self.done - self.failed)

    def eta(self) -> str:
        left = self.total - self.done - self.failed
        if not self.finished_here or not left:
            return "?" if left else "0s"
        seconds = (time.perf_counter() - self.started) / self.finished_here * left
        return f"{seconds / 60:.1f}min" if seconds >= 90 else f"{seconds:.0f}s"

    def state(self) -> str:
        return f"{self.done} done, {self.running} running, {self.failed} failed, ETA {self.eta()}"

    def finished(self, outcome: RunOutcome) -> None:
        self.finished_here += 1
        if outcome.status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.bar.update(self.bar_id, completed=self.done + self.failed, state=self.state())
        line = f"[{self.done + self.failed}/{self.total}] {outcome.run_id}: {outcome.status} in {outcome.seconds:.1f}s"
        if outcome.error:
            line += f" ({outcome.error.splitlines()[0]})"
        if self.interactive:
            self.bar.console.print(line, highlight=False, markup=False)
        else:
            self.console.print(f"{line} — {self.state()}", highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        if self.interactive:
            self.bar.stop()
