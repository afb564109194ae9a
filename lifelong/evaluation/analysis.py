"""Records (and their references) -> every metric per seed, across-seed summaries and flags.

This is what `metrics.json` holds and what the report shows; the report recomputes it from the
run folder with the same function, so the two never disagree. Pure numpy: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifelong.evaluation import metrics as m
from lifelong.evaluation.aggregate import gap_beyond_noise, summarize
from lifelong.evaluation.record import LifetimeRecord

METRICS_VERSION = 2
FLAGGED_GAPS = ("ntg_learn", "ntg_final")
LCA_BETA = 10  # A-GEM's beta, capped at the number of adaptation steps


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
    """Every metric of one (strategy, seed): scalars at the top, per-task arrays under `per_task`."""
    R = record.scores
    out = m.core_metrics(R)
    per_task = {"forgetting": out.pop("forgetting_per_task"), "fwt": m.fwt_per_task(R),
                "forgetting_avalanche": m.avalanche_forgetting_per_task(R)}
    out["forgetting_avalanche"] = m.avalanche_forgetting(R)
    dr = m.diaz_rodriguez(R)
    bounded = record.kind == "classification"  # REM and BWT+ need a score in [0, 1]
    out.update(dr_A=dr["A"], dr_BWT=dr["BWT"], dr_FWT=dr["FWT"],
               dr_REM=dr["REM"] if bounded else m.NAN, dr_BWT_plus=dr["BWT_plus"] if bounded else m.NAN)
    if refs is not None and refs.independent is not None:
        per_task.update(m.negative_transfer_per_task(R, refs.independent))
        out.update(ntg_learn=m.defined_mean(per_task["ntg_learn"]), ntg_final=m.defined_mean(per_task["ntg_final"]))
    if refs is not None and refs.joint is not None:
        per_task["intransigence"] = m.intransigence_per_task(R, refs.joint)
        values = m.intransigence(R, refs.joint)
        out.update(intransigence=values["final"], intransigence_mean=values["mean"])
    if record.curves is not None:
        out.update(_adaptation_metrics(record.curves, per_task))
    out["per_task"] = {name: [float(v) for v in values] for name, values in per_task.items()}
    return out


def _adaptation_metrics(curves: np.ndarray, per_task: dict) -> dict:
    """Few-shot curves C[i, j, s]: zero-shot ACC, gain and area at the end, and LCA on the curve of
    each task just before its own training (C[k-1, k]: b = adaptation steps, not minibatches)."""
    final = curves[-1]
    per_task["adaptation_gain"] = m.adaptation_gain(final)
    per_task["adaptation_area"] = m.adaptation_area(final)
    n = curves.shape[1]
    before_own_training = curves[np.arange(n), np.arange(n)]
    return {"acc_zero_shot": m.acc(curves[:, :, 0]), "adaptation_gain": m.defined_mean(per_task["adaptation_gain"]),
            "adaptation_area": m.defined_mean(per_task["adaptation_area"]),
            "lca": m.lca(before_own_training, min(LCA_BETA, curves.shape[2] - 1))}


def analyse(records: list[LifetimeRecord], references: dict[tuple[str, int], ReferenceScores] | None = None,
            tolerance: float = 0.02) -> dict:
    """Metrics per (strategy, seed), their mean/std/95% CI across seeds (scalars and per task), and
    negative-transfer flags: a task is flagged when its per-seed gaps are > 0 beyond seed noise."""
    references = references or {}
    per_seed: dict[str, dict[int, dict]] = {}
    for record in records:
        per_seed.setdefault(record.strategy, {})[record.seed] = record_metrics(
            record, references.get((record.strategy, record.seed)))
    summary, per_task, flags = {}, {}, {}
    for label, seeds in per_seed.items():
        runs = list(seeds.values())
        n_tasks = len(records[0].task_names)
        scalars = _union(k for run in runs for k in run if k != "per_task")
        summary[label] = {k: summarize([run.get(k, m.NAN) for run in runs]) for k in scalars}
        stacked = {k: np.array([run["per_task"].get(k, [m.NAN] * n_tasks) for run in runs])
                   for k in _union(k for run in runs for k in run["per_task"])}
        per_task[label] = {k: [summarize(column) for column in values.T] for k, values in stacked.items()}
        flags[label] = {k: [gap_beyond_noise(column, tolerance).flagged for column in stacked[k].T]
                        for k in FLAGGED_GAPS if k in stacked}
    n_seeds = max((len(s) for s in per_seed.values()), default=0)
    first = records[0] if records else None
    return {
        "version": METRICS_VERSION,
        "score": first.score_name if first else None,
        "task_names": first.task_names if first else [],
        "per_seed": per_seed, "summary": summary, "per_task": per_task, "flags": flags,
        "flag_rule": flag_rule(n_seeds, tolerance),
    }


def _union(keys) -> list[str]:
    """Distinct keys in first-seen order (seeds may differ, e.g. one lacking its references)."""
    return list(dict.fromkeys(keys))


def flag_rule(n_seeds: int, tolerance: float) -> dict:
    """Which test `gap_beyond_noise` applies with this many seeds, in words for the report."""
    if n_seeds >= 2:
        return {"rule": "ci95", "seeds": n_seeds, "tolerance": tolerance,
                "text": f"flagged when the lower end of the 95% Student-t confidence interval of the per-seed "
                        f"gaps (paired by seed, {n_seeds} seeds) is above 0"}
    return {"rule": "tolerance", "seeds": n_seeds, "tolerance": tolerance,
            "text": f"one seed, so no seed noise can be estimated: flagged when the gap exceeds the stated "
                    f"tolerance {tolerance:g} (analysis.tolerance)"}
