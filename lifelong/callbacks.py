"""Task-level callbacks: the orchestrator tells, callbacks act (progress, files, checkpoints).

Every hook is a no-op by default; a subclass overrides the ones it needs. Names are fixed
methods, not looked up by string, so a typo is an AttributeError rather than a silent no-op.
"""

from __future__ import annotations

from lifelong.evaluation.record import LifetimeRecord
from lifelong.streams.task import Stream, Task


class Callback:
    def on_run_start(self, stream: Stream, record: LifetimeRecord) -> None: ...

    def on_task_start(self, task: Task, record: LifetimeRecord) -> None: ...

    def on_eval(self, after_task: int, record: LifetimeRecord) -> None: ...

    def on_task_end(self, task: Task, record: LifetimeRecord, strategy) -> None: ...

    def on_run_end(self, record: LifetimeRecord) -> None: ...

    def on_exception(self, error: BaseException, record: LifetimeRecord) -> None: ...
