"""The DARPA L2M (Lifelong Learning Machines) metric family, from an l2logger-format log.

- `log.py` writes a lifetime as an l2logger log (with the real `l2logger` package, the `l2m` extra):
  evaluation (test) blocks and training blocks in the order the run played them.
- `compute.py` reads a log back with l2logger's own reader and validator and computes L2M's metrics
  as the reference `l2metrics` 3.1.0 does, preprocessing included (New et al. 2022, "Lifelong
  Learning Metrics", arXiv:2201.08278). l2metrics itself does not run on NumPy >= 2 (it calls
  `np.NaN`, removed there), so Lifelong computes them; tests/unit/test_l2m.py checks the values
  against l2metrics run in a separate environment on the same logs.
- `metrics.py` registers the values with the metric registry (glossary, report, compare).
"""

from __future__ import annotations

from lifelong.errors import UserError

L2M_EXTRA_HINT = "pip install 'lifelong[l2m]'"


class L2MError(UserError):
    """An L2M log cannot be used (wrong format, missing files); the message names the folder and the fix."""


class L2MPackageMissing(L2MError, ImportError):
    """The `l2m` extra is not installed."""


def require_l2logger():
    """The l2logger package's modules (logger, util), or one line saying how to install it."""
    try:
        from l2logger import l2logger, util
    except ImportError:
        raise L2MPackageMissing(f"L2M logs need the l2logger package: {L2M_EXTRA_HINT}") from None
    return l2logger, util
