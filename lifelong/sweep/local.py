"""The local backend: a pool of `jobs` worker processes on this machine.

Each worker gets cores // jobs torch threads (two jobs on two cores must not each spin two threads) and,
when several CUDA devices exist, a device of its own (worker i sees device i mod count). The workers start
when the backend is made and import the engine at once (torch, the run and report modules: seconds), so
that start-up overlaps the driver's own work of checking the sweep instead of delaying the first runs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from lifelong.sweep.job import RunJob, RunOutcome, play_run
from lifelong.sweep.spec import SweepError


WORKER_DIED = ("a worker process of the pool died (killed, or out of memory?) before this run ended; start the "
               "sweep again to resume it")


class LocalBackend:
    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise SweepError(f"--jobs {jobs}: give 1 or more worker processes")
        self.jobs = self.slots = jobs
        self.threads = max(1, len(os.sched_getaffinity(0)) // jobs)
        self.pool = _warm_pool(jobs) if jobs > 1 else None

    def launch(self, jobs: list[RunJob]) -> Iterator[RunOutcome]:
        """Yield each run's outcome as it finishes; jobs=1 runs in this process, one after the other."""
        jobs = [replace(job, threads=self.threads) for job in jobs]
        if self.pool is None:
            yield from map(play_run, jobs)
            return
        futures = {}
        for job in jobs:
            try:
                futures[self.pool.submit(play_run, job)] = job
            except BrokenProcessPool:  # a worker died before the runs were handed out
                yield RunOutcome(job.run_id, "failed", 0.0, WORKER_DIED)
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except BrokenProcessPool:  # a worker was killed (by a signal, or for memory): every run not
                    # finished fails, and the next start of the sweep resumes them from their folders
                    yield RunOutcome(futures[future].run_id, "failed", 0.0, WORKER_DIED)
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Stop the workers (after the runs they are playing, which keep their run folders consistent)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _warm_pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` spawned workers (fork would copy torch's thread pools), each importing the engine right away."""
    context = multiprocessing.get_context("spawn")
    worker_index = context.Value("i", 0)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                               initargs=(worker_index, _cuda_device_count(), os.getpid()))
    for _ in range(jobs):  # one submission each: the pool starts a worker per waiting task
        pool.submit(int)
    return pool


def _cuda_device_count() -> int:
    """CUDA devices, without initialising CUDA in the driver (torch.cuda.device_count reads NVML or the
    CUDA_VISIBLE_DEVICES list; importing torch here also loads it while the workers start)."""
    import torch

    return torch.cuda.device_count()


def _start_worker(worker_index, cuda_devices: int, driver_pid: int) -> None:
    _end_with_driver(driver_pid)
    _take_device(worker_index, cuda_devices)
    import lifelong.report.figures  # noqa: F401  (matplotlib: the report's figures)
    import lifelong.run  # noqa: F401  (torch, pandas, the engine: all loaded before the first job arrives)


def _take_device(worker_index, cuda_devices: int) -> None:
    """Worker i sees CUDA device i mod count alone, when there are several."""
    with worker_index.get_lock():
        index = worker_index.value
        worker_index.value += 1
    if cuda_devices > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % cuda_devices)


def _end_with_driver(driver_pid: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the driver dies, however it dies.

    Without it, a driver killed by a signal it cannot catch leaves its workers playing the runs already
    queued to them, into run folders that no sweep tracks any more (the next start of the sweep would
    find them locked). An unfinished run is resumed by the next start of the sweep.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != driver_pid:  # the driver died before the request took effect
        os._exit(1)
