"""Across-seed aggregation: compute each metric per seed, then mean ± 95% Student-t CI across seeds, and
the three-state verdict on a per-seed gap (negative transfer / inconclusive / none)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

MAX_SEEDS_ADVISED = 10_000  # beyond this "seeds needed" is reported as more than this


@lru_cache(maxsize=None)
def t975(df: int) -> float:
    """Student-t quantile t_{0.975, df} (two-sided 95%), from scipy.stats."""
    from scipy import stats  # imported on first use: the CLI's start-up does not pay for scipy

    return float(stats.t.ppf(0.975, df))


@lru_cache(maxsize=1)
def _half_width_factors() -> np.ndarray:
    """t_{0.975, n-1} / sqrt(n) for n = 0..MAX_SEEDS_ADVISED (NaN below n = 2)."""
    from scipy import stats

    n = np.arange(MAX_SEEDS_ADVISED + 1, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = stats.t.ppf(0.975, n - 1) / np.sqrt(n)
    out[:2] = np.nan
    return out


def summarize(values) -> dict[str, float]:
    """mean, std (ddof=1), Student-t 95% CI and n over seeds, NaN values ignored;
    std and CI are NaN for n < 2."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n >= 2 else math.nan
    half = t975(n - 1) * std / math.sqrt(n) if n >= 2 else math.nan
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def seeds_needed(mean: float, std: float) -> int | None:
    """The fewest seeds whose 95% CI half-width t_{0.975, n-1} * std / sqrt(n) falls below |mean|, i.e.
    for which a gap of this size and spread would exclude 0; None when no spread is known or more
    than MAX_SEEDS_ADVISED would be needed."""
    if not std > 0:
        return None
    enough = np.flatnonzero(_half_width_factors() * std < abs(mean))
    return int(enough[0]) if enough.size else None


NEGATIVE, INCONCLUSIVE, NONE = "negative transfer", "inconclusive", "none"


class NoiseVerdict(NamedTuple):
    verdict: str  # NEGATIVE, INCONCLUSIVE or NONE
    rule: str  # "ci95" (>= 2 seeds), "tolerance" (1 seed) or "no data"
    seeds_needed: int | None = None  # inconclusive with >= 2 seeds: seeds a decisive answer would need

    @property
    def flagged(self) -> bool:
        return self.verdict == NEGATIVE


def gap_beyond_noise(gaps, tolerance: float) -> NoiseVerdict:
    """Verdict on a per-seed gap (e.g. NTG, > 0 = bad), paired by seed. With >= 2 seeds: negative
    transfer when the 95% CI's lower end is > 0; inconclusive when the mean exceeds `tolerance` but
    the CI includes 0 (with the seeds that would decide at this spread); else none. With one seed no
    noise can be estimated: a gap above `tolerance` is at most inconclusive."""
    s = summarize(gaps)
    if s["n"] >= 2:
        if s["ci95_low"] > 0:
            return NoiseVerdict(NEGATIVE, "ci95")
        if s["mean"] > tolerance:
            return NoiseVerdict(INCONCLUSIVE, "ci95", seeds_needed(s["mean"], s["std"]))
        return NoiseVerdict(NONE, "ci95")
    if s["n"] == 1:
        return NoiseVerdict(INCONCLUSIVE if s["mean"] > tolerance else NONE, "tolerance")
    return NoiseVerdict(NONE, "no data")
