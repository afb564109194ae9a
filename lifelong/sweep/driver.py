"""Play a sweep: validate every run, skip the finished, hand the rest to a backend, keep the index current,
then build the compare view of the finished runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from lifelong.sweep.folder import SweepFolder
from lifelong.sweep.job import RunJob
from lifelong.sweep.progress import SweepProgress
from lifelong.sweep.spec import Sweep, SweepError, load_sweep


@dataclass
class SweepResult:
    folder: Path
    sweep: Sweep
    index: SweepFolder
    compare: list[Path]  # compare.csv/.md/.html, empty when no run finished

    @property
    def failed(self) -> list[str]:
        return [e.run.run_id for e in self.index.entries if e.status == "failed"]


def make_backend(name: str, jobs: int = 1, address: str | None = None, cpus_per_run: int = 1):
    """The backend named on the command line; checks its settings (and a Ray address) before any run starts."""
    if name == "local":
        if address is not None:
            raise SweepError("--address is for --backend ray; the local backend runs on this machine (use --jobs)")
        from lifelong.sweep.local import LocalBackend

        return LocalBackend(jobs)
    if name == "ray":
        if jobs != 1:
            raise SweepError(f"--jobs {jobs} is for --backend local; Ray runs as many runs at once as the "
                             "cluster's CPUs allow (each takes --cpus-per-run)")
        from lifelong.sweep.ray_backend import RayBackend  # the only place ray is imported

        return RayBackend(address, cpus_per_run)
    raise SweepError(f"--backend {name!r}: choose local (a process pool, --jobs N) or ray (--address HOST:PORT)")


def run_sweep(path: str | Path, *, backend: str = "local", jobs: int = 1, address: str | None = None,
              cpus_per_run: int = 1, out: str | Path | None = None, progress: bool = True,
              console: Console | None = None) -> SweepResult:
    """Expand and validate the sweep file, then run every unfinished run on the backend (see lifelong.sweep).

    The local pool starts first, so its workers load the engine while the sweep is checked; Ray (which
    starts a cluster or connects to one) only once the sweep file is known to be good."""
    launcher = make_backend(backend, jobs, address) if backend == "local" else None
    try:
        sweep = load_sweep(path, out)
        launcher = launcher or make_backend(backend, jobs, address, cpus_per_run)
        folder = SweepFolder(sweep)
        folder.start()
        _play(folder, launcher, progress, console)
    finally:
        if launcher is not None:
            launcher.close()
    compared = folder.compare()
    return SweepResult(sweep.out, sweep, folder, compared.written if compared else [])


def _play(folder: SweepFolder, launcher, progress: bool, console: Console | None) -> None:
    todo = [e for e in folder.entries if e.action != "skip"]
    jobs = [RunJob(e.run.run_id, str(e.folder), e.run.config.model_dump(mode="json", by_alias=True),
                   e.action == "resume") for e in todo]
    display = SweepProgress(len(folder.entries), len(folder.entries) - len(todo), launcher.slots,
                            console) if progress else None
    try:
        for outcome in launcher.launch(jobs) if jobs else ():
            folder.record(outcome.run_id, outcome.status, outcome.seconds, outcome.error)
            if display:
                display.finished(outcome)
    finally:
        if display:
            display.close()
