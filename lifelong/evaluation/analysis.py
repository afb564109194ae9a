"""Records (and their references) -> every metric per seed, across-seed summaries and flags.

This is what `metrics.json` holds and what the report shows; the report recomputes it from the
run folder with the same function, so the two never disagree. Pure numpy: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifelong.evaluation import metrics as m  # importing it registers the metrics
from lifelong.evaluation import flips  # noqa: F401  (registers the flip metrics, after the core ones)
from lifelong.l2m import metrics as l2m_metrics  # noqa: F401  (registers the L2M metrics)
from lifelong.evaluation.efficiency import Costs  # registers the efficiency metrics, last
from lifelong.evaluation.aggregate import gap_beyond_noise, summarize
from lifelong.evaluation.record import LifetimeRecord
from lifelong.evaluation.registry import METRICS

METRICS_VERSION = 3
FLAGGED_GAPS = ("ntg_learn", "ntg_final")
NOT_SCALARS = ("per_task", "coverage")


@dataclass
class ReferenceScores:
    """Per-task reference scores for one (budget, seed): r_j of the independent learner and a*_k of
    the joint learner on tasks 1..k (NaN where k was not trained). Either may be None."""

    independent: np.ndarray | None
    joint: np.ndarray | None


def reference_scores(references: dict | None) -> dict[tuple[str, int], ReferenceScores]:
    """references.json -> the (strategy label, seed) -> ReferenceScores map the metrics take."""
    out = {}
    for entry in (references or {}).get("entries", []):
        scores = ReferenceScores(*(np.array(entry[k], dtype=float) if entry.get(k) is not None else None
                                   for k in ("independent", "joint")))
        out.update({(label, entry["seed"]): scores for label in entry["strategies"]})
    return out


def record_metrics(record: LifetimeRecord, refs: ReferenceScores | None = None) -> dict:
    """Every registered metric of one (strategy, seed) whose inputs exist: scalars at the top, per-task
    arrays under `per_task`, and under `coverage` how many terms each used (evaluated cells only) and
    why a NaN value is NaN. Metrics needing a reference or curves the run lacks are left out."""
    inputs = {"R": record.scores, "independent": refs.independent if refs else None,
              "joint": refs.joint if refs else None, "curves": record.curves, "flips": record.flips,
              "l2m": record.l2m, "cost": Costs.of(record.task_cost, record.n_tasks),
              "within_task": record.within_task}
    out, per_task, coverage = {}, {}, {}
    for key, entry in METRICS.items():
        if any(inputs[name] is None for name in entry.needs):
            continue
        result = entry.evaluate(inputs, bounded_score=record.kind == "classification")
        out[key], coverage[key] = result.value, result.coverage()
        if entry.per_task is not None:
            per_task[key] = [float(v) for v in entry.per_task_values(inputs)]
    return {**out, "per_task": per_task, "coverage": coverage}


def analyse(records: list[LifetimeRecord], references: dict[tuple[str, int], ReferenceScores] | None = None,
            tolerance: float = 0.02) -> dict:
    """Metrics per (strategy, seed), their mean/std/95% CI across seeds (scalars and per task), the
    terms each metric used, and negative-transfer verdicts per task: `flags` marks the tasks whose
    per-seed gaps are > 0 beyond seed noise, `verdicts` says negative transfer / inconclusive / none."""
    references = references or {}
    per_seed: dict[str, dict[int, dict]] = {}
    for record in records:
        per_seed.setdefault(record.strategy, {})[record.seed] = record_metrics(
            record, references.get((record.strategy, record.seed)))
    summary, coverage, per_task, flags, verdicts = {}, {}, {}, {}, {}
    for label, seeds in per_seed.items():
        runs = list(seeds.values())
        n_tasks = len(records[0].task_names)
        scalars = _union(k for run in runs for k in run if k not in NOT_SCALARS)
        summary[label] = {k: summarize([run.get(k, m.NAN) for run in runs]) for k in scalars}
        coverage[label] = {k: _total_coverage([run["coverage"][k] for run in runs if k in run["coverage"]])
                           for k in scalars}
        stacked = {k: np.array([run["per_task"].get(k, [m.NAN] * n_tasks) for run in runs])
                   for k in _union(k for run in runs for k in run["per_task"])}
        per_task[label] = {k: [summarize(column) for column in values.T] for k, values in stacked.items()}
        judged = {k: [gap_beyond_noise(column, tolerance) for column in stacked[k].T]
                  for k in FLAGGED_GAPS if k in stacked}
        flags[label] = {k: [v.flagged for v in column] for k, column in judged.items()}
        verdicts[label] = {k: [{"verdict": v.verdict, "seeds_needed": v.seeds_needed} for v in column]
                           for k, column in judged.items()}
    n_seeds = max((len(s) for s in per_seed.values()), default=0)
    first = records[0] if records else None
    return {
        "version": METRICS_VERSION,
        "score": first.score_name if first else None,
        "task_names": first.task_names if first else [],
        "per_seed": per_seed, "summary": summary, "coverage": coverage, "per_task": per_task,
        "flags": flags, "verdicts": verdicts, "flag_rule": flag_rule(n_seeds, tolerance),
    }


def _total_coverage(per_seed: list[dict]) -> dict:
    """Terms used and defined, summed over seeds; a reason only when the metric is NaN in every seed
    (then its mean over seeds is NaN too)."""
    reasons = [c["reason"] for c in per_seed]
    return {"used": sum(c["used"] for c in per_seed), "of": sum(c["of"] for c in per_seed),
            "reason": reasons[0] if reasons and all(reasons) else None}


def _union(keys) -> list[str]:
    """Distinct keys in first-seen order (seeds may differ, e.g. one lacking its references)."""
    return list(dict.fromkeys(keys))


def flag_rule(n_seeds: int, tolerance: float) -> dict:
    """Which test `gap_beyond_noise` applies with this many seeds, in words for the report."""
    if n_seeds >= 2:
        return {"rule": "ci95", "seeds": n_seeds, "tolerance": tolerance,
                "text": f"flagged (negative transfer) when the lower end of the 95% Student-t confidence "
                        f"interval of the per-seed gaps (paired by seed, {n_seeds} seeds) is above 0; "
                        f"inconclusive when the mean gap exceeds the tolerance {tolerance:g} "
                        f"(analysis.tolerance) but the interval includes 0"}
    return {"rule": "tolerance", "seeds": n_seeds, "tolerance": tolerance,
            "text": f"one seed, so no seed noise can be estimated and nothing is flagged: a gap above the "
                    f"stated tolerance {tolerance:g} (analysis.tolerance) is inconclusive; more seeds decide"}
