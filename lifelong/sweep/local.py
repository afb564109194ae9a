"""The local backend: a pool of `jobs` worker processes on this machine.

Each worker gets cores // jobs torch threads (two jobs on two cores must not each spin two threads) and,
when several CUDA devices exist, a device of its own (worker i sees device i mod count).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

from lifelong.sweep.job import RunJob, RunOutcome, play_run
from lifelong.sweep.spec import SweepError


class LocalBackend:
    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise SweepError(f"--jobs {jobs}: give 1 or more worker processes")
        self.jobs = self.slots = jobs
        self.threads = max(1, len(os.sched_getaffinity(0)) // jobs)

    def launch(self, jobs: list[RunJob]) -> Iterator[RunOutcome]:
        """Yield each run's outcome as it finishes; jobs=1 runs in this process, one after the other."""
        jobs = [replace(job, threads=self.threads) for job in jobs]
        if self.jobs == 1:
            yield from map(play_run, jobs)
            return
        import torch

        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        worker_index = context.Value("i", 0)
        with ProcessPoolExecutor(min(self.jobs, len(jobs)) or 1, mp_context=context, initializer=_start_worker,
                                 initargs=(worker_index, torch.cuda.device_count())) as pool:
            futures = [pool.submit(play_run, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        """Nothing to release: the pool lives only while `launch` runs."""


def _start_worker(worker_index, cuda_devices: int) -> None:
    with worker_index.get_lock():
        index = worker_index.value
        worker_index.value += 1
    if cuda_devices > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % cuda_devices)
