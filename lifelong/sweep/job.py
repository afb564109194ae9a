"""One run of a sweep as a backend sees it: a picklable job in, an outcome out.

`play_run` is the only thing a backend calls, in whatever process or machine it chooses; it starts the run
with `run_experiment`, or goes on with it with `resume_experiment` when the folder holds an unfinished one.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunJob:
    run_id: str
    folder: str
    config: dict  # ExperimentConfig.model_dump(mode="json", by_alias=True): plain data, for any backend
    resume: bool
    threads: int | None = None  # torch CPU threads for this run when its config does not set `threads`


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # done | failed
    seconds: float
    error: str | None = None


def play_run(job: RunJob) -> RunOutcome:
    """Run (or resume) one sweep run in this process; a failure is reported, not raised, so others go on."""
    import torch

    from lifelong.config import ExperimentConfig
    from lifelong.run import resume_experiment, run_experiment

    if job.threads is not None:
        torch.set_num_threads(job.threads)
    start = time.perf_counter()
    try:
        if job.resume:
            resume_experiment(job.folder, progress=False)
        else:
            run_experiment(ExperimentConfig.model_validate(job.config), out=job.folder, progress=False)
    except Exception as error:  # noqa: BLE001 - the run folder keeps the traceback; the sweep goes on
        error_file = Path(job.folder) / "error.txt"
        if not error_file.is_file():
            error_file.parent.mkdir(parents=True, exist_ok=True)
            error_file.write_text("".join(traceback.format_exception(error)))
        return RunOutcome(job.run_id, "failed", time.perf_counter() - start, f"{type(error).__name__}: {error}")
    return RunOutcome(job.run_id, "done", time.perf_counter() - start)
