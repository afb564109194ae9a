"""The peak memory of one task, not the process's maximum so far.

On CUDA the allocator's peak is reset when the task starts (`reset_peak_memory_stats`). On a Linux
CPU the kernel's peak resident set (VmHWM) is reset by writing 5 to /proc/self/clear_refs and read
when the task ends: exact, and free. Elsewhere the resident set is sampled every 5 ms in a thread
(with psutil); without psutil the figure is the process's peak so far, and `method` says so.
"""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import torch

CLEAR_REFS, STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")
SAMPLE_SECONDS = 0.005


class TaskPeakMemory:
    """`start()` when the task starts, `stop()` -> its peak in MiB; `method` names how it is measured."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.method = "CUDA allocator peak, reset per task"
        elif _can_reset_hwm():
            self.method = "peak resident set (VmHWM), reset per task"
        elif _psutil() is not None:
            self.method = f"resident set sampled every {SAMPLE_SECONDS * 1000:g} ms"
        else:
            self.method = "process peak resident set so far (no per-task method on this system)"
        self._sampler: _RssSampler | None = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method.startswith("peak resident set (VmHWM)"):
            CLEAR_REFS.write_text("5")
        elif self.method.startswith("resident set sampled"):
            self._sampler = _RssSampler()

    def stop(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.method.startswith("peak resident set (VmHWM)"):
            return _vm_hwm_kib() / 1024
        if self._sampler is not None:
            peak, self._sampler = self._sampler.stop(), None
            return peak / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vm_hwm_kib() -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError(f"{STATUS} has no VmHWM line")


def _can_reset_hwm() -> bool:
    try:
        _vm_hwm_kib()
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


class _RssSampler:
    def __init__(self):
        self._process = _psutil().Process()
        self.peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, self._process.memory_info().rss)
