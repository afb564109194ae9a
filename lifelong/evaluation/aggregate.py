"""Across-seed aggregation: compute each metric per seed, then mean ± 95% CI (METRICS.md §6)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Student t critical values t_{0.975, df} for df = 1..30 (scipy.stats.t.ppf(0.975, df), 4 d.p.).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)


def _t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def summarize(values) -> dict[str, float]:
    """mean, std (ddof=1), Student-t 95% CI and n over seeds, NaN values ignored;
    std and CI are NaN for n < 2."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n >= 2 else math.nan
    half = _t975(n - 1) * std / math.sqrt(n) if n >= 2 else math.nan
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


class NoiseVerdict(NamedTuple):
    flagged: bool
    rule: str  # "ci95" (>= 2 seeds), "tolerance" (1 seed) or "no data"


def gap_beyond_noise(gaps, tolerance: float) -> NoiseVerdict:
    """Flag a per-seed gap (e.g. NTG) as > 0 beyond noise: 95% CI lower bound > 0 with >= 2 seeds,
    else the single seed's gap > `tolerance`."""
    s = summarize(gaps)
    if s["n"] >= 2:
        return NoiseVerdict(s["ci95_low"] > 0, "ci95")
    if s["n"] == 1:
        return NoiseVerdict(s["mean"] > tolerance, "tolerance")
    return NoiseVerdict(False, "no data")
