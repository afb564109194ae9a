"""The report of one run as blocks, in reading order: what was run, how far it got, what happened, the
numbers, the figures, what every number means, and the config and machine it ran on."""

from __future__ import annotations

import json
import warnings

import numpy as np
import yaml

from lifelong.evaluation.aggregate import summarize
from lifelong.evaluation.registry import METRICS, groups
from lifelong.report import figures, l2m_section
from lifelong.report.coarsen import FULL_UP_TO, TaskBlocks, curve_tasks
from lifelong.report.cost_section import cost_section
from lifelong.report.glossary import JOINT_BUDGET, R_NOTATION, better, per_task_titles
from lifelong.report.render import Best, Block, Code, Figure, Heading, Table, Text, user
from lifelong.report.rundata import RunData

LISTED_UP_TO = 10  # task names written out in a sentence before "and N more"


def _defined(value) -> bool:
    return value is not None and not np.isnan(value)


def fmt(agg: dict | None) -> str:
    """mean ± 95% CI half-width when there are >= 2 seeds; 'n/a' when undefined."""
    if not agg or not _defined(agg["mean"]):
        return "n/a"
    half = agg["ci95_high"] - agg["mean"]
    return f"{agg['mean']:.4f} ± {half:.4f}" if agg["n"] > 1 and np.isfinite(half) else f"{agg['mean']:.4f}"


def _ranked(means: dict[str, float], metric: str) -> tuple[set[str], set[str]]:
    """(best, worst) rows for `metric`, every tied row in each; empty with fewer than two values."""
    defined = {k: v for k, v in means.items() if _defined(v)}
    direction = better(metric)
    if len(defined) < 2 or direction is None:
        return set(), set()
    top, bottom = (max, min) if direction == "higher" else (min, max)
    best, worst = top(defined.values()), bottom(defined.values())
    return {k for k, v in defined.items() if v == best}, {k for k, v in defined.items() if v == worst}


def best_rows(means: dict[str, float], metric: str) -> set[str]:
    """The row(s) with the best mean for `metric` (ties all win); none with fewer than two values."""
    return _ranked(means, metric)[0]


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


def _names(names: list[str]) -> str:
    """Task names for a sentence, at most LISTED_UP_TO of them."""
    shown = ", ".join(user(n) for n in names[:LISTED_UP_TO])
    return shown + (f" and {len(names) - LISTED_UP_TO} more" if len(names) > LISTED_UP_TO else "")


def build(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading(f"{run.name}: lifelong-learning report", 1), Text(_overview(run))]
    blocks += _progress(run)
    if run.notes:
        blocks += [Heading("Missing or incomplete files"),
                   Text("This report shows what the folder still allows. " + " ".join(
                       f"({n + 1}) {user(note)}." for n, note in enumerate(run.notes)))]
    metrics = run.metrics or {}
    if metrics.get("summary"):
        blocks += [Heading("What happened"), *map(Text, _story(run, metrics)), *_metric_tables(metrics)]
        blocks += _negative_transfer(run, metrics)
    if run.records:
        blocks += _figures(run, metrics)
        blocks += _per_task_tables(metrics)
        blocks += _timings(run)
        blocks += l2m_section.build(run)
        blocks += cost_section(run, metrics)
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
    parts = [f"Stream {user(stream.get('name'))}"
             + (f" (builder {user(stream['builder'])}, {user(stream.get('scenario', '?'))}, "
                f"{user(stream.get('n_tasks', '?'))} tasks)" if "builder" in stream else "") + ".",
             f"Strategies: {', '.join(map(user, strategies)) or 'none recorded'}; seeds {user(seeds)}.",
             _evaluated_cells(run),
             f"Score: {user(score)}" + (" (negative mean squared error, so higher is better everywhere)"
                                        if score == "neg_mse" else "") + "."]
    if evaluation.get("mode") == "few-shot":
        parts.append(f"Few-shot evaluation: before scoring a task, a copy of the learner adapts for "
                     f"{user(evaluation.get('steps'))} steps on {user(evaluation.get('shots'))} support examples "
                     "per class (row 0 too: b_j is the random init after adaptation).")
    if config.get("training"):
        parts.append("Training budget: " + ", ".join(f"{user(k)} {user(v)}" for k, v in config["training"].items())
                     + ".")
    return " ".join(parts)


def _evaluated_cells(run: RunData) -> str:
    learned = "Each strategy learned the tasks in order"
    if not run.records:
        return learned + "."
    evaluated = sum(int(np.sum(~np.isnan(r.scores))) for r in run.records)
    total = sum(r.scores.size for r in run.records)
    if evaluated == total:
        return (learned + "; after every task (and once before any training) every task of the stream was "
                "evaluated on its test set.")
    return (learned + f"; {evaluated} of the {total} cells of the score matrices were evaluated (an evaluation "
            "schedule, or lifetimes that did not finish). Cells not evaluated are NaN, never 0: blank in the "
            "heatmaps, n/a in the tables, and every metric below uses only evaluated cells and says how many "
            "of its terms it could compute.")


def _progress(run: RunData) -> list[Block]:
    """Which lifetime stopped where, when the run did not finish: said before any number."""
    if not run.unfinished:
        return []
    rows = [[life.strategy, str(life.seed), f"{life.completed} of {life.n_tasks}", life.state()]
            for life in run.lifetimes]
    return [Heading("Unfinished run"),
            Text(f"{len(run.unfinished)} of {len(run.lifetimes)} lifetimes did not finish, so this report is "
                 "not the run's result: rows after the last completed task are empty, metrics that need them "
                 f"(ACC, BWT, forgetting: the final row) are n/a for those lifetimes, and means over seeds use "
                 f"the finished seeds only (see n). `lifelong resume {user(run.path)}` can finish the run."),
            Table(["strategy", "seed", "tasks completed", "state"], rows,
                  "From events.jsonl (task_end and error events), else from the record's filled rows.")]


def _story(run: RunData, metrics: dict) -> list[str]:
    lines = []
    for key, words in (("acc", "Final score (ACC)"), ("forgetting", "Forgetting"), ("fwt", "Forward transfer")):
        line = _extremes(metrics, key, words)
        if line:
            lines.append(line)
    warning = _joint_warning(run, metrics)
    if warning:
        lines.append(warning)
    verdicts = {label: v for label, v in (metrics.get("verdicts") or _verdicts_from_flags(metrics)).items() if v}
    if not verdicts:
        lines.append("No references were computed, so negative transfer and intransigence are not measured.")
        return lines
    names = metrics.get("task_names") or []
    rule = metrics.get("flag_rule", {})
    one_seed = rule.get("rule") != "ci95"
    for key, what in (("ntg_learn", "learned worse than by the independent learner (NTG_learn > 0)"),
                      ("ntg_final", "ending worse than the independent learner's (NTG_final > 0)")):
        hits = _tasks_with(verdicts, key, "negative transfer", names)
        if hits:
            lines.append(f"Tasks {what}, beyond seed noise: " + "; ".join(
                f"**{user(label)}** on {_names(tasks)}" for label, tasks in hits.items()) + ".")
        elif not one_seed:
            lines.append(f"No task {what.replace('learned', 'is learned').replace('ending', 'ends')}, "
                         "beyond seed noise.")
        unsure = _tasks_with(verdicts, key, "inconclusive", names)
        if unsure:
            lines.append(f"Inconclusive, {what.split(' (')[0]} by more than the tolerance "
                         f"{rule.get('tolerance')} but " + ("with one seed, so without a noise estimate"
                                                            if one_seed else "within seed noise (the 95% CI "
                                                            "includes 0)") + ": " + "; ".join(
                f"{user(label)} on {_names(tasks)}" for label, tasks in unsure.items())
                + "." + _seeds_advice(verdicts, key))
        elif one_seed:
            lines.append(f"No task {what.split(' (')[0].replace('learned', 'is learned').replace('ending', 'ends')} "
                         f"by more than the tolerance {rule.get('tolerance')} (one seed: nothing can be flagged "
                         "beyond seed noise).")
    return lines


def _verdicts_from_flags(metrics: dict) -> dict:
    """metrics.json before version 3 has flags only: a flag is a negative-transfer verdict."""
    return {label: {k: [{"verdict": "negative transfer" if f else "none", "seeds_needed": None} for f in column]
                    for k, column in flags.items()} for label, flags in (metrics.get("flags") or {}).items()}


def _tasks_with(verdicts: dict, key: str, verdict: str, names: list[str]) -> dict[str, list[str]]:
    hits = {label: [names[j] if j < len(names) else str(j + 1) for j, v in enumerate(v.get(key, []))
                    if v["verdict"] == verdict] for label, v in verdicts.items()}
    return {label: tasks for label, tasks in hits.items() if tasks}


def _seeds_advice(verdicts: dict, key: str) -> str:
    needed = [v["seeds_needed"] for per in verdicts.values() for v in per.get(key, [])
              if v["verdict"] == "inconclusive" and v["seeds_needed"]]
    if not needed:
        return ""
    low, high = min(needed), max(needed)
    return (f" At the observed spread, a decisive answer would need {low} seeds" + (f" (up to {high} for the "
            "least clear task)" if high > low else "") + " (the negative-transfer table below lists each task).")


def _extremes(metrics: dict, key: str, words: str) -> str | None:
    """Best and worst of `key` across strategies, ties named together (never broken by name), and
    whether the gap between them is beyond seed noise (paired by seed)."""
    means = {label: s[key]["mean"] for label, s in metrics["summary"].items() if key in s and _defined(s[key]["mean"])}
    if not means:
        return None
    if len(means) == 1:
        (label, value), = means.items()
        return f"{words}: {user(label)} {value:.4f}."
    best, worst = _ranked(means, key)
    best_value, worst_value = means[next(iter(best))], means[next(iter(worst))]
    if best_value == worst_value:
        return f"{words}: every strategy ties at {best_value:.4f}."
    best, worst = [x for x in means if x in best], [x for x in means if x in worst]  # in run order
    line = (f"{words}, {better(key)} is better: best {_together(best, bold=True)} ({best_value:.4f}), "
            f"worst {_together(worst)} ({worst_value:.4f}).")
    return line + " " + _noise(metrics, key, best[0], worst[0])


def _together(labels: list[str], bold: bool = False) -> str:
    """Tied strategies named together, in run order: a tie is never broken by name."""
    mark = "**" if bold else ""
    return " and ".join(f"{mark}{user(x)}{mark}" for x in labels) + (" (tied)" if len(labels) > 1 else "")


def _noise(metrics: dict, key: str, best: str, worst: str) -> str:
    """Is best − worst beyond seed noise? Paired by seed: both lifetimes share the stream and init."""
    runs = metrics.get("per_seed") or {}
    first, second = runs.get(best, {}), runs.get(worst, {})
    gaps = [first[s].get(key, np.nan) - second[s].get(key, np.nan) for s in first if s in second]
    s = summarize(gaps)
    if s["n"] < 2:
        return "Only one seed has both values, so whether this gap is beyond seed noise cannot be told."
    if s["ci95_low"] <= 0 <= s["ci95_high"]:
        return (f"The best and the worst are within seed noise: the 95% CI of their paired difference over "
                f"{s['n']} seeds, [{s['ci95_low']:.4f}, {s['ci95_high']:.4f}], includes 0.")
    return (f"The gap is beyond seed noise (paired 95% CI over {s['n']} seeds "
            f"[{s['ci95_low']:.4f}, {s['ci95_high']:.4f}]).")


def _joint_warning(run: RunData, metrics: dict) -> str | None:
    """The joint reference is the upper bound: say so when a learner beats it (intransigence < 0)."""
    tolerance = (metrics.get("flag_rule") or {}).get("tolerance", run.tolerance)
    below = {}
    for label, per_task in (metrics.get("per_task") or {}).items():
        gaps = [(k + 1, -agg["mean"]) for k, agg in enumerate(per_task.get("intransigence", []))
                if _defined(agg["mean"]) and agg["mean"] < -tolerance]
        if gaps:
            below[label] = gaps
    if not below:
        return None
    worst = max(gap for gaps in below.values() for _, gap in gaps)
    where = "; ".join(f"{user(label)} at k = {', '.join(str(k) for k, _ in gaps[:LISTED_UP_TO])}"
                      + (" …" if len(gaps) > LISTED_UP_TO else "") for label, gaps in below.items())
    return (f"**Warning: the joint reference scores below the lifelong learners** it is the upper bound for "
            f"(a*_k below R[k][k] by more than the tolerance {tolerance:g}, by up to {worst:.4f}): {where}. "
            "Intransigence is negative there and measures the reference's budget rather than the strategy; "
            "give the references more epochs (a strategy's `training:` also sets its references' budget) "
            "or read intransigence with care.")


def _metric_tables(metrics: dict) -> list[Block]:
    caption = ("Mean over seeds ± half-width of the 95% Student-t confidence interval (no ± with one seed); "
               "bold = best mean in its column (higher or lower as the glossary says); overlapping intervals "
               "mean the difference may be seed noise.")
    blocks: list[Block] = []
    for title, keys in groups().items():
        table = metric_table(metrics["summary"], keys, caption)
        if table:
            blocks += [Heading(title, 3), table]
    coverage = _coverage(metrics)
    return blocks + ([Text(coverage)] if coverage else [])


def _coverage(metrics: dict) -> str | None:
    """Which metrics could not use all their terms (cells not evaluated), and why a NaN one is n/a."""
    partial = []
    for label, per_metric in (metrics.get("coverage") or {}).items():
        for key, c in per_metric.items():
            if c["used"] < c["of"] or c["reason"]:
                partial.append(f"{user(label)} {key}: " + (f"n/a, {user(c['reason'])}" if c["reason"] else
                                                          f"{c['used']} of {c['of']} terms"))
    if not metrics.get("coverage"):
        return None
    if not partial:
        return "Every metric used all of its terms (every cell it needs was evaluated)."
    return ("Terms each metric could compute from evaluated cells, where not all (summed over seeds; a metric "
            "averages only the terms it has): " + "; ".join(partial) + ".")


def _negative_transfer(run: RunData, metrics: dict) -> list[Block]:
    refs = run.references
    if not refs:
        return []
    rule = metrics.get("flag_rule", {})
    names = metrics.get("task_names") or []
    verdicts = metrics.get("verdicts") or _verdicts_from_flags(metrics)
    rows = []
    for label, per_key in verdicts.items():
        rows.append([label, *(_task_list(per_key.get(key, []), verdict)
                              for key in ("ntg_learn", "ntg_final") for verdict in ("negative transfer",
                                                                                   "inconclusive"))])
    entries = refs.get("entries", [])
    sources = sorted({f"{e[k + '_source']}" for e in entries for k in ("independent", "joint")})
    joint_at = sorted({k + 1 for e in entries for k, v in enumerate(e.get("joint") or []) if _defined(v)})
    return [Heading("Negative transfer and the references"),
            Text(f"A task shows negative transfer when the lifelong learner scores below the independent learner "
                 f"(the same model, training budget and hyper-parameters, not tuned separately, trained from "
                 f"scratch on that task alone): {rule.get('text', '')}. " + JOINT_BUDGET + " "
                 f"It is known at k = {joint_at} of {len(names)}; intransigence uses those k only. Where the "
                 f"references came from: {'; '.join(map(user, sources))}. Cache: {user(refs.get('cache_dir'))} "
                 f"({refs.get('cache_hits', 0)} trainings reused, {refs.get('cache_misses', 0)} run)."),
            Table(["strategy", "negative transfer at acquisition (NTG_learn > 0)", "inconclusive at acquisition",
                   "negative transfer at the end (NTG_final > 0)", "inconclusive at the end"], rows,
                  "Task numbers (1-based); for an inconclusive task, in brackets, the seeds a decisive answer "
                  "would need at the observed spread. " + ", ".join(
                      f"{j + 1} = {user(n)}" for j, n in enumerate(names[:30])) + (" …" if len(names) > 30 else ""))]


def _task_list(per_task: list[dict], verdict: str) -> str:
    tasks = [str(j + 1) + (f" ({v['seeds_needed']})" if verdict == "inconclusive" and v["seeds_needed"] else "")
             for j, v in enumerate(per_task) if v["verdict"] == verdict]
    shown = ", ".join(tasks[:30]) + (f" … ({len(tasks)} in all)" if len(tasks) > 30 else "")
    return shown or "none"


def _figures(run: RunData, metrics: dict) -> list[Block]:
    groups_ = _by_strategy(run)
    score = run.records[0].score_name
    T = run.records[0].n_tasks
    blocks_ = TaskBlocks.for_tasks(T)
    matrices = {label: mean_over_seeds([r.scores for r in records]) for label, records in groups_.items()}
    evaluated = sum(int(np.sum(~np.isnan(r.scores))) for r in run.records)
    total = sum(r.scores.size for r in run.records)
    drawn = curve_tasks(T)
    blocks: list[Block] = [
        Heading("Figures"),
        Figure(figures.png(figures.heatmaps(matrices, score, blocks_)),
               "Score matrix per strategy, mean over seeds. Row 'before' = before any training (b_j); row i = "
               f"after training task i; column = evaluated task. {evaluated} of {total} cells evaluated over all "
               "strategies and seeds; cells never evaluated are blank." + blocks_.describe("rows and columns")),
        Figure(figures.png(figures.lifetime(matrices, score)),
               "Score of each task over the lifetime, mean over seeds: dotted before the task's own training, "
               f"solid after, lines joining the evaluated points ({evaluated} of {total} cells evaluated). A "
               "falling solid line is forgetting."
               + (f" With {T} tasks, {len(drawn)} evenly spaced tasks are drawn "
                  f"({', '.join(str(j + 1) for j in drawn)})." if T > FULL_UP_TO else ""))]
    per_task, verdicts = metrics.get("per_task", {}), metrics.get("flags", {})
    panels = []
    for key, title in per_task_titles().items():
        values = {label: p[key] for label, p in per_task.items() if key in p}
        if values and any(not np.isnan(a["mean"]) for v in values.values() for a in v):
            panels.append((title, values, {label: f.get(key) for label, f in verdicts.items()}))
    if panels:
        caption = ("Per task, one panel per quantity: bars = mean over seeds, whiskers = 95% CI; a red triangle "
                   "marks a task flagged for negative transfer by the rule above; no bar where the cells a value "
                   "needs were not evaluated.")
        values_shown = sum(int(np.sum(~np.isnan([a["mean"] for a in v]))) for _, values, _ in panels
                           for v in values.values())
        values_possible = sum(len(v) for _, values, _ in panels for v in values.values())
        counted = (f" {values_shown} of {values_possible} per-task values could be computed from evaluated "
                   "cells.")
        if blocks_.coarse:
            caption = (f"Per task, one panel per quantity. With {T} tasks, each bar is a block of {blocks_.size} "
                       "consecutive tasks: the mean of their means over seeds, whiskers from the lowest to the "
                       "highest task mean in the block; a red triangle marks a block holding a task flagged for "
                       "negative transfer. metrics.json keeps every task.")
        blocks.append(Figure(figures.png(figures.per_task_bars(panels, blocks_)), caption + counted))
    curves = {label: [r.curves for r in records if r.curves is not None] for label, records in groups_.items()}
    curves = {label: c for label, c in curves.items() if c}
    if curves:
        blocks.append(Figure(figures.png(figures.adaptation_curves(curves, score)),
                             "Few-shot adaptation curves (mean over tasks; line = mean over seeds, band = "
                             "range over seeds)."))
    return blocks


def _per_task_tables(metrics: dict) -> list[Block]:
    names = metrics.get("task_names") or []
    blocks_ = TaskBlocks.for_tasks(len(names))
    if blocks_.coarse:
        intro = (f"With {len(names)} tasks, one row per block of {blocks_.size} consecutive tasks: the mean of "
                 "their means over seeds; ⚑ n = n tasks of the block flagged beyond seed noise. metrics.json "
                 "keeps every task with its 95% CI.")
    else:
        intro = ("Mean over seeds ± 95% CI half-width. ⚑ = negative transfer beyond seed noise; ? = inconclusive "
                 "(above the tolerance, within seed noise).")
    blocks: list[Block] = [Heading("Per task"), Text(intro)]
    titles = per_task_titles()
    for label, per_task in metrics.get("per_task", {}).items():
        keys = [k for k in titles if k in per_task]
        flags = metrics.get("flags", {}).get(label, {})
        verdicts = (metrics.get("verdicts") or _verdicts_from_flags(metrics)).get(label, {})
        if blocks_.coarse:
            rows = [[block, *cells] for block, *cells in zip(blocks_.labels(), *(
                _block_cells(blocks_, per_task[k], flags.get(k)) for k in keys))]
        else:
            rows = [[name, *(fmt(per_task[k][j]) + _MARKS.get(_verdict(verdicts, k, j), "") for k in keys)]
                    for j, name in enumerate(names)]
        blocks += [Heading(label, 3), Table(["task", *keys], rows)]
    return blocks


_MARKS = {"negative transfer": " ⚑", "inconclusive": " ?"}


def _verdict(verdicts: dict, key: str, task: int) -> str | None:
    per_task = verdicts.get(key) or []
    return per_task[task]["verdict"] if task < len(per_task) else None


def _block_cells(blocks_: TaskBlocks, aggs: list[dict], flags: list[bool] | None) -> list[str]:
    means = blocks_.reduce(np.array([a["mean"] for a in aggs], dtype=float))
    counts = blocks_.reduce(np.array(flags or [False] * blocks_.n_tasks, dtype=float), how=np.nansum)
    return [("n/a" if np.isnan(m) else f"{m:.4f}") + (f" ⚑ {int(c)}" if c else "") for m, c in zip(means, counts)]


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
    rows = [[key, info.title, info.formula, f"{info.better} is better", info.baseline, info.convention, info.group]
            for key, info in METRICS.items()]
    return [Heading("Glossary"),
            Text(R_NOTATION + " In few-shot runs C[i][j][s] is the score on task j after training tasks 1..i and "
                 "s adaptation steps; R = C at s = K. Cells not evaluated are NaN and every metric averages "
                 "only the terms it can compute from evaluated cells (metrics.json keeps how many under "
                 "`coverage`); with none, it is NaN with the reason. " + JOINT_BUDGET),
            Table(["metric", "name", "formula", "better", "baseline", "convention / source", "group"], rows)]


def _matrices(run: RunData) -> list[Block]:
    T = run.records[0].n_tasks
    blocks_ = TaskBlocks.for_tasks(T)
    blocks: list[Block] = [Heading("Score matrices"),
                           Text("Mean over seeds. Row = after training task i (first row: before any training), "
                                "column = evaluated task; n/a = not evaluated." + blocks_.describe(
                                    "rows and columns"))]
    names = blocks_.labels()
    for label, records in _by_strategy(run).items():
        matrix = blocks_.matrix(mean_over_seeds([r.scores for r in records]))
        header = ["after \\ task", *names]
        rows = [["before" if i == 0 else names[i - 1], *("n/a" if np.isnan(v) else f"{v:.3f}" for v in row)]
                for i, row in enumerate(matrix)]
        blocks += [Heading(f"{label} ({len(records)} seed{'s' if len(records) > 1 else ''})", 3),
                   Table(header, rows)]
    return blocks


def _provenance(run: RunData) -> list[Block]:
    blocks: list[Block] = [Heading("Config and environment"),
                           Text(f"Run folder {user(run.path)}. Every number and figure here is recomputed from "
                                "its files (record.csv, timings.csv, curves.csv, references.json, config.yaml, "
                                "events.jsonl) by `lifelong report`.")]
    if run.config:
        blocks.append(Code(yaml.safe_dump(run.config, sort_keys=False)))
    if run.environment:
        blocks.append(Code(json.dumps(run.environment, indent=2)))
    return blocks
