"""Energy of a span of work: measured where the hardware counts it, else estimated and labelled so.

Backends, tried in this order (`energy_meter`):
- GPU: the NVIDIA driver's cumulative energy counter (NVML `nvmlDeviceGetTotalEnergyConsumption`,
  nvidia-ml-py), the run's GPU only;
- CPU: RAPL, the kernel's package energy counters (/sys/class/powercap/intel-rapl:N/energy_uj),
  where readable: whole sockets, so other processes' work counts too;
- otherwise, under `cost: full` only, CodeCarbon (the `cost` extra), an *estimate* (for a CPU
  without RAPL: its TDP times the process's load), labelled "estimated (codecarbon, <method>)"
  wherever it appears; CO2 only here, as CodeCarbon computes it. Not under `basic`: importing it
  and its per-task bookkeeping cost seconds per run, more than the default level may take;
- otherwise none: energy is NaN and `label` says why.
A meter `start()`s at the span's start; `stop()` returns (joules, kg CO2 or NaN).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

RAPL_ROOT = Path("/sys/class/powercap")
NAN = float("nan")


class NoEnergy:
    """No backend: every figure is NaN, and `label` says why."""

    measured = False

    def __init__(self, reason: str):
        self.label = f"unavailable: {reason}"

    def start(self) -> None: ...

    def stop(self) -> tuple[float, float]:
        return NAN, NAN


class NvmlEnergy:
    measured = True

    def __init__(self, device: torch.device):
        import pynvml

        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        self._read()  # raises NVMLError_NotSupported on GPUs without the counter (before Volta)
        self.label = f"measured (NVML energy counter, GPU {index})"

    def _read(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000  # mJ -> J

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> tuple[float, float]:
        return self._read() - self._start, NAN


class RaplEnergy:
    """Sum of the top-level package domains (intel-rapl:N), each counter's wrap-around undone."""

    measured = True

    def __init__(self, root: Path = RAPL_ROOT):
        self._domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not self._domains:
            raise OSError(f"no RAPL package domain under {root}")
        self._ranges = [int((d / "max_energy_range_uj").read_text()) for d in self._domains]
        self._read()  # raises PermissionError where the counters are root-only
        self.label = f"measured (RAPL, {len(self._domains)} CPU package(s), whole socket)"

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self._domains]

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> tuple[float, float]:
        spent = [(end - start) % span for start, end, span in zip(self._start, self._read(), self._ranges)]
        return sum(spent) / 1e6, NAN


class CodeCarbonEnergy:
    measured = False

    def __init__(self):
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._tracker = OfflineEmissionsTracker(output_methods=[], log_level="error")
        self._tracker.start()
        modes = sorted({str(getattr(h, "_mode", None)) for h in self._tracker._hardware
                        if type(h).__name__ in ("CPU", "GPU")} - {"None"})
        self.label = f"estimated (codecarbon, {'+'.join(modes) or 'unknown method'})"

    def start(self) -> None:
        self._tracker.start_task("task")

    def stop(self) -> tuple[float, float]:
        data = self._tracker.stop_task()
        return float(data.energy_consumed) * 3.6e6, float(data.emissions)  # kWh -> J, kg CO2eq


def energy_meter(device: torch.device, estimate: bool = True, rapl_root: Path = RAPL_ROOT):
    """The best backend this machine has for `device` (CodeCarbon's estimate only when `estimate`);
    `NoEnergy` with the reasons when none works."""
    reasons = []
    if device.type == "cuda":
        try:
            return NvmlEnergy(device)
        except Exception as error:  # ImportError, NVMLError_*: the driver or GPU lacks the counter
            reasons.append(f"NVML: {type(error).__name__}: {error}")
    else:
        try:
            return RaplEnergy(rapl_root)
        except OSError as error:
            reasons.append(f"RAPL: {error}")
    if not estimate:
        reasons.append("estimates (CodeCarbon) are made under `cost: full` only")
        return NoEnergy("; ".join(reasons))
    try:
        return CodeCarbonEnergy()
    except ImportError:
        reasons.append("CodeCarbon is not installed (pip install 'lifelong[cost]')")
    except Exception as error:
        reasons.append(f"CodeCarbon: {type(error).__name__}: {error}")
    return NoEnergy("; ".join(reasons))

