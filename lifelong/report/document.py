"""The report of one run as blocks, in reading order: what was run, what happened, the numbers, the
figures, what every number means, and the config and machine it ran on."""

from __future__ import annotations

import json
import warnings

import numpy as np
import yaml

from lifelong.report import figures
from lifelong.report.glossary import GLOSSARY, GROUPS, PER_TASK, R_NOTATION, better
from lifelong.report.render import Best, Block, Code, Figure, Heading, Table, Text
from lifelong.report.rundata import RunData


def _defined(value) -> bool:
    return value is not None and not np.isnan(value)


def fmt(agg: dict | None) -> str:
    """mean ± 95% CI half-width when there are >= 2 seeds; 'n/a' when undefined."""
    if not agg or not _defined(agg["mean"]):
        return "n/a"
    half = agg["ci95_high"] - agg["mean"]
    return f"{agg['mean']:.4f} ± {half:.4f}" if agg["n"] > 1 and np.isfinite(half) else f"{agg['mean']:.4f}"


def best_rows(means: dict[str, float], metric: str) -> set[str]:
    """The row(s) with the best mean for `metric` (ties all win); none with fewer than two values."""
    defined = {k: v for k, v in means.items() if _defined(v)}
    direction = better(metric)
    if len(defined) < 2 or direction is None:
        return set()
    target = max(defined.values()) if direction == "higher" else min(defined.values())
    return {k for k, v in defined.items() if v == target}


def metric_table(summary: dict[str, dict[str, dict]], metrics: tuple[str, ...], caption: str) -> Table | None:
    """Rows = strategies, columns = the metrics that have a value; the best of each column in bold."""
    shown = [k for k in metrics if any(fmt(s.get(k)) != "n/a" for s in summary.values())]
    if not shown:
        return None
    best = {k: best_rows({label: s.get(k, {}).get("mean", np.nan) for label, s in summary.items()}, k) for k in shown}
    rows = [[label, *(Best(fmt(s.get(k))) if label in best[k] else fmt(s.get(k)) for k in shown)]
            for label, s in summary.items()]
    return Table(["strategy", *shown], rows, caption)


def mean_over_seeds(arrays: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():  # an entry missing in every seed stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(arrays), axis=0)


def build(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading(f"{run.name}: lifelong-learning report", 1), Text(_overview(run))]
    if run.notes:
        blocks += [Heading("Missing or incomplete files"),
                   Text("This report shows what the folder still allows. " + " ".join(
                       f"({n + 1}) {note}." for n, note in enumerate(run.notes)))]
    metrics = run.metrics or {}
    if metrics.get("summary"):
        blocks += [Heading("What happened"), *map(Text, _story(run, metrics)), *_metric_tables(metrics)]
        blocks += _negative_transfer(run, metrics)
    if run.records:
        blocks += _figures(run, metrics)
        blocks += _per_task_tables(metrics)
        blocks += _timings(run)
    blocks += _glossary()
    if run.records:
        blocks += _matrices(run)
    blocks += _provenance(run)
    return blocks


def _by_strategy(run: RunData) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in run.records:
        out.setdefault(record.strategy, []).append(record)
    return out


def _overview(run: RunData) -> str:
    stream, config = run.stream, run.config
    strategies = list(_by_strategy(run)) or list((run.metrics or {}).get("summary", {}))
    seeds = sorted({r.seed for r in run.records}) or config.get("seeds", [])
    score = (run.metrics or {}).get("score") or (run.records[0].score_name if run.records else "score")
    evaluation = config.get("evaluation") or {}
    parts = [f"Stream `{stream.get('name')}`"
             + (f" (builder {stream['builder']}, {stream.get('scenario', '?')}, {stream.get('n_tasks', '?')} tasks)"
                if "builder" in stream else "") + ".",
             f"Strategies: {', '.join(strategies) or 'none recorded'}; seeds {seeds}.",
             "Each strategy learned the tasks in order; after every task (and once before any training) every "
             "task of the stream was evaluated on its test set.",
             f"Score: {score}" + (" (negative mean squared error, so higher is better everywhere)"
                                  if score == "neg_mse" else "") + "."]
    if evaluation.get("mode") == "few-shot":
        parts.append(f"Few-shot evaluation: before scoring a task, a copy of the learner adapts for "
                     f"{evaluation.get('steps')} steps on {evaluation.get('shots')} support examples per class "
                     "(row 0 too: b_j is the random init after adaptation).")
    if config.get("training"):
        parts.append("Training budget: " + ", ".join(f"{k} {v}" for k, v in config["training"].items()) + ".")
    return " ".join(parts)


def _story(run: RunData, metrics: dict) -> list[str]:
    summary = metrics["summary"]
    lines = []
    for key, words in (("acc", "Final score (ACC)"), ("forgetting", "Forgetting"), ("fwt", "Forward transfer")):
        ranked = sorted(((s[key]["mean"], label) for label, s in summary.items()
                         if key in s and not np.isnan(s[key]["mean"])), reverse=better(key) == "higher")
        if len(ranked) >= 2:
            (top, top_label), (low, low_label) = ranked[0], ranked[-1]
            lines.append(f"{words}, {better(key)} is better: best **{top_label}** ({top:.4f}), "
                         f"worst {low_label} ({low:.4f}).")
        elif ranked:
            lines.append(f"{words}: {ranked[0][1]} {ranked[0][0]:.4f}.")
    flags = {label: f for label, f in (metrics.get("flags") or {}).items() if f}
    if not flags:
        lines.append("No references were computed, so negative transfer and intransigence are not measured.")
        return lines
    names = metrics.get("task_names") or []
    rule = metrics.get("flag_rule", {})
    margin = ("beyond seed noise" if rule.get("rule") == "ci95"
              else f"by more than the tolerance {rule.get('tolerance')}")
    for key, what in (("ntg_learn", "learned worse than by the independent learner (NTG_learn > 0)"),
                      ("ntg_final", "ending worse than the independent learner's (NTG_final > 0)")):
        hits = {label: [names[j] for j, flagged in enumerate(f[key]) if flagged] for label, f in flags.items()}
        hits = {label: tasks for label, tasks in hits.items() if tasks}
        if hits:
            lines.append(f"Tasks {what}, {margin}: " + "; ".join(
                f"**{label}** on {', '.join(tasks)}" for label, tasks in hits.items()) + ".")
        else:
            lines.append(f"No task {what.replace('learned', 'is learned').replace('ending', 'ends')}, {margin}.")
    return lines


def _metric_tables(metrics: dict) -> list[Block]:
    caption = ("Mean over seeds ± half-width of the 95% Student-t confidence interval (no ± with one seed); "
               "bold = best mean in its column (higher or lower as the glossary says); overlapping intervals "
               "mean the difference may be seed noise.")
    tables = [(title, metric_table(metrics["summary"], keys, caption)) for title, keys in GROUPS.items()]
    return [block for title, table in tables if table for block in (Heading(title, 3), table)]


def _negative_transfer(run: RunData, metrics: dict) -> list[Block]:
    refs = run.references
    if not refs:
        return []
    rule = metrics.get("flag_rule", {})
    names = metrics.get("task_names") or []
    rows = []
    for label, flags in (metrics.get("flags") or {}).items():
        rows.append([label, *(", ".join(str(j + 1) for j, f in enumerate(flags.get(k, [])) if f) or "none"
                              for k in ("ntg_learn", "ntg_final"))])
    entries = refs.get("entries", [])
    sources = sorted({f"{e[k + '_source']}" for e in entries for k in ("independent", "joint")})
    joint_at = sorted({k + 1 for e in entries for k, v in enumerate(e.get("joint") or []) if _defined(v)})
    return [Heading("Negative transfer and the references"),
            Text(f"A task is flagged when the lifelong learner scores below the independent learner (the same "
                 f"model, training budget and hyper-parameters, not tuned separately, trained from scratch on "
                 f"that task alone): {rule.get('text', '')}. "
                 f"The joint reference a*_k (one model trained from scratch on tasks 1..k) is known at k = "
                 f"{joint_at} of {len(names)}; intransigence uses those k only. Where the references "
                 f"came from: {'; '.join(sources)}. Cache: {refs.get('cache_dir')} "
                 f"({refs.get('cache_hits', 0)} trainings reused, {refs.get('cache_misses', 0)} run)."),
            Table(["strategy", "flagged at acquisition (NTG_learn > 0)", "flagged at the end (NTG_final > 0)"], rows,
                  "Task numbers (1-based). " + ", ".join(f"{j + 1} = {n}" for j, n in enumerate(names[:30]))
                  + (" …" if len(names) > 30 else ""))]


def _figures(run: RunData, metrics: dict) -> list[Block]:
    groups = _by_strategy(run)
    score = run.records[0].score_name
    matrices = {label: mean_over_seeds([r.scores for r in records]) for label, records in groups.items()}
    blocks: list[Block] = [Heading("Figures"),
                           Figure(figures.png(figures.heatmaps(matrices, score)),
                                  "Score matrix per strategy, mean over seeds. Row 'before' = before any "
                                  "training (b_j); row i = after training task i; column = evaluated task."),
                           Figure(figures.png(figures.lifetime(matrices, score)),
                                  "Score of each task over the lifetime, mean over seeds: dotted before the "
                                  "task's own training, solid after. A falling solid line is forgetting.")]
    per_task, flags = metrics.get("per_task", {}), metrics.get("flags", {})
    panels = []
    for key, title in PER_TASK.items():
        values = {label: p[key] for label, p in per_task.items() if key in p}
        if values and any(not np.isnan(a["mean"]) for v in values.values() for a in v):
            panels.append((title, values, {label: f.get(key) for label, f in flags.items()}))
    if panels:
        blocks.append(Figure(figures.png(figures.per_task_bars(panels)),
                             "Per task, one panel per quantity: bars = mean over seeds, whiskers = 95% CI; a red "
                             "triangle marks a task flagged for negative transfer by the rule above."))
    curves = {label: [r.curves for r in records if r.curves is not None] for label, records in groups.items()}
    curves = {label: c for label, c in curves.items() if c}
    if curves:
        blocks.append(Figure(figures.png(figures.adaptation_curves(curves, score)),
                             "Few-shot adaptation curves (mean over tasks; line = mean over seeds, band = "
                             "range over seeds)."))
    return blocks


def _per_task_tables(metrics: dict) -> list[Block]:
    names = metrics.get("task_names") or []
    blocks: list[Block] = [Heading("Per task"),
                           Text("Mean over seeds ± 95% CI half-width. ⚑ = flagged beyond seed noise.")]
    for label, per_task in metrics.get("per_task", {}).items():
        keys = [k for k in PER_TASK if k in per_task]
        flags = metrics.get("flags", {}).get(label, {})
        rows = [[name, *(fmt(per_task[k][j]) + (" ⚑" if flags.get(k, [False] * len(names))[j] else "")
                         for k in keys)] for j, name in enumerate(names)]
        blocks += [Heading(label, 3), Table(["task", *keys], rows)]
    return blocks


def _timings(run: RunData) -> list[Block]:
    if run.timings is None:
        return []
    rows = []
    for label, records in _by_strategy(run).items():
        totals = [np.nansum(r.train_seconds) for r in records]
        rows.append([label, f"{np.mean(totals):.2f}", f"{np.mean(totals) / records[0].n_tasks:.3f}"])
    return [Heading("Training time"), Table(["strategy", "seconds per lifetime", "seconds per task"], rows,
                                            "Mean over seeds; wall time of `learn` only (evaluation excluded).")]


def _glossary() -> list[Block]:
    rows = [[key, info.title, info.formula, f"{info.better} is better", info.baseline, info.convention]
            for key, info in GLOSSARY.items()]
    return [Heading("Glossary"), Text(R_NOTATION + " In few-shot runs C[i][j][s] is the score on task j after "
                                                   "training tasks 1..i and s adaptation steps; R = C at s = K."),
            Table(["metric", "name", "formula", "better", "baseline", "convention / source"], rows)]


def _matrices(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading("Score matrices"),
                           Text("Mean over seeds. Row = after training task i (first row: before any training), "
                                "column = evaluated task.")]
    for label, records in _by_strategy(run).items():
        matrix = mean_over_seeds([r.scores for r in records])
        header = ["after \\ task", *(str(j + 1) for j in range(matrix.shape[1]))]
        rows = [["before" if i == 0 else str(i), *("n/a" if np.isnan(v) else f"{v:.3f}" for v in row)]
                for i, row in enumerate(matrix)]
        blocks += [Heading(f"{label} ({len(records)} seed{'s' if len(records) > 1 else ''})", 3),
                   Table(header, rows)]
    return blocks


def _provenance(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading("Config and environment"),
                           Text(f"Run folder `{run.path}`. Every number and figure here is recomputed from its "
                                "files (record.csv, timings.csv, curves.csv, references.json, config.yaml) by "
                                "`lifelong report`.")]
    if run.config:
        blocks.append(Code(yaml.safe_dump(run.config, sort_keys=False)))
    if run.environment:
        blocks.append(Code(json.dumps(run.environment, indent=2)))
    return blocks
