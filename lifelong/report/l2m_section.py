"""The report's "L2M" and "Prediction flips" sections: what the metric tables cannot show — L2M's
pairwise transfer as a task x task matrix, why an L2M value is n/a, where its preprocessing is
saved, and which model update flipped how many predictions."""

from __future__ import annotations

import numpy as np

from lifelong.evaluation.flips import ERRORS, N, NEGATIVE, POSITIVE
from lifelong.report.coarsen import FULL_UP_TO
from lifelong.report.render import Block, Heading, Table, Text, user
from lifelong.report.rundata import RunData


def build(run: RunData) -> list[Block]:
    return _l2m(run) + _flips(run)


def _by_strategy(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in records:
        out.setdefault(record.strategy, []).append(record)
    return out


def _l2m(run: RunData) -> list[Block]:
    with_l2m = [r for r in run.records if r.l2m]
    if not with_l2m:
        return []
    first = with_l2m[0].l2m
    blocks: list[Block] = [
        Heading("L2M"),
        Text("The DARPA L2M metrics (l2m_* in the tables above; New et al. 2022), computed as l2metrics 3.1.0 "
             "does with its default settings from the l2logger log of each lifetime (l2m/<strategy>-seed<N>/log): "
             "flat smoothing of training blocks, each task's range normalised to 1..101 "
             f"(settings: {user(', '.join(f'{k}={v}' for k, v in first['settings'].items()))}), terminal "
             "performance = mean of a test block, of the last 10% of a training block. The "
             "preprocessed values are in l2m/<strategy>-seed<N>/preprocessed.tsv and the normalisation ranges in "
             "l2m/metrics.json. The single-task expert is the independent learner. Each training block holds "
             "one experience (the task's score right after it), so curve-based metrics may be n/a.")]
    reasons = sorted({f"{key}: {reason}" for r in with_l2m for key, reason in r.l2m["reasons"].items()})
    if reasons:
        blocks.append(Text("n/a values: " + "; ".join(user(r) for r in reasons) + "."))
    for label, records in _by_strategy(with_l2m).items():
        names = list(records[0].l2m["lifelong_task_names"].values())
        if len(names) > FULL_UP_TO:
            blocks.append(Text(f"{user(label)}: {len(names)} tasks; the pairwise transfer matrix is in "
                               "l2m/metrics.json."))
            continue
        matrix = _transfer_matrix([r.l2m for r in records])
        rows = [[name, *("n/a" if np.isnan(v) else f"{v:.3f}" for v in row)] for name, row in zip(names, matrix)]
        blocks += [Heading(f"{label}: pairwise transfer (ratio)", 3),
                   Table(["trained \\ evaluated", *names], rows,
                         "Row a, column b: task b's test after a training block of task a over its test just "
                         "before it (L2M transfer ratio, normalised scores, first occurrence of the pair, mean "
                         "over seeds): forward transfer above the diagonal's order of training (b not yet "
                         "trained), backward transfer once b was trained; > 1 = helped, < 1 = hurt.")]
    return blocks


def _transfer_matrix(results: list[dict]) -> np.ndarray:
    """Mean over seeds of the first forward or backward transfer ratio of each (trained, evaluated) pair."""
    names = list(results[0]["lifelong_task_names"])
    index = {name: j for j, name in enumerate(names)}
    stacked = np.full((len(results), len(names), len(names)), np.nan)
    for s, result in enumerate(results):
        for key in ("forward_transfer_ratio", "backward_transfer_ratio"):
            for a, pairs in result["transfer"][key].items():
                for b, values in pairs.items():
                    stacked[s, index[a], index[b]] = values[0]
    counts = np.sum(~np.isnan(stacked), axis=0)
    return np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)


def _flips(run: RunData) -> list[Block]:
    with_flips = [r for r in run.records if r.flips is not None]
    if not with_flips:
        return []
    blocks: list[Block] = [
        Heading("Prediction flips"),
        Text("Per model update (the model after task i against the previous evaluated model), summed over the "
             "tasks scored by both and the seeds: NFR = negative flips / examples, NFI = negative flips / errors "
             "of the new model, PFR = positive flips / examples (Yan et al. 2021). The per-example correctness "
             "behind them is kept bit-packed in record.rows.jsonl. The metric tables above average the same "
             "ratios per (update, task).")]
    for label, records in _by_strategy(with_flips).items():
        counts = np.nansum(np.stack([r.flips for r in records]), axis=(0, 2))  # (T+1, 4): summed over seeds, tasks
        names = records[0].task_names
        rows = []
        for i in range(1, len(counts)):
            n, errors = counts[i, N], counts[i, ERRORS]
            if n == 0:
                continue
            rows.append([names[i - 1], f"{counts[i, NEGATIVE] / n:.4f}",
                         "n/a" if errors == 0 else f"{counts[i, NEGATIVE] / errors:.4f}",
                         f"{counts[i, POSITIVE] / n:.4f}", f"{int(n)}"])
        if len(rows) > FULL_UP_TO:
            blocks.append(Text(f"{user(label)}: {len(rows)} updates; the per-update flips are in record.rows.jsonl."))
            continue
        blocks += [Heading(f"{label}: flips per update", 3),
                   Table(["after task", "NFR", "NFI", "PFR", "examples compared"], rows)]
    return blocks
