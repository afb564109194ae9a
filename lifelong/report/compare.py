"""Strategies side by side across run folders: one table per stream (runs on different streams are
allowed but never mixed in one table), mean ± 95% CI, the best of each metric in bold."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lifelong.evaluation.flips import FLIPS
from lifelong.l2m.metrics import L2M
from lifelong.report.document import best_rows, fmt
from lifelong.evaluation.aggregate import summarize
from lifelong.evaluation.efficiency import pareto_front
from lifelong.report import figures
from lifelong.evaluation.registry import METRICS, groups
from lifelong.report.render import Best, Block, Figure, Heading, Table, Text, to_html, to_markdown, user
from lifelong.report.rundata import RunData, load_run
from lifelong.run_folder import atomic_write

COMPARED_GROUPS = ("Core metrics", "Against the references", FLIPS, L2M, "Cost and efficiency")


def columns() -> list[str]:
    """The metrics a comparison shows: every registered metric of the compared groups."""
    return [key for group in COMPARED_GROUPS for key in groups().get(group, ())]


@dataclass
class CompareResult:
    written: list[Path]
    frame: pd.DataFrame  # long form: one row per (stream, run, strategy, metric)
    notes: list[str]


def stream_id(run: RunData) -> str:
    """The stream's name plus a short hash of its full spec: same name, different spec -> different group."""
    spec = json.dumps(run.stream, sort_keys=True, default=str)
    return f"{run.stream.get('name')} [{hashlib.sha256(spec.encode()).hexdigest()[:8]}]"


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> CompareResult:
    runs = [load_run(d) for d in run_dirs]
    notes = [f"{run.path}: {note}" for run in runs for note in run.notes]
    frame = _long_form(runs)
    groups = list(dict.fromkeys(frame["stream"])) if len(frame) else []
    if len(groups) > 1:
        notes.append(f"the runs cover {len(groups)} different streams; they are compared within each stream only")
    out = Path(out_dir) if out_dir else Path("reports") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    blocks = _blocks(frame, groups, runs)
    paths = [out / "compare.csv", out / "compare.md", out / "compare.html"]
    atomic_write(paths[0], frame.to_csv(index=False))
    atomic_write(paths[1], to_markdown(blocks))
    atomic_write(paths[2], to_html("lifelong comparison", blocks))
    return CompareResult(paths, frame, notes)


# Config fields that say where and how a run went, not what it measured: runs that differ only in
# these (and in their seeds) are one setting, whose seeds are pooled.
NOT_A_SETTING = ("name", "seeds", "out", "threads", "tensorboard", "l2m")


def setting_id(run: RunData) -> str:
    """A hash of the config without its seeds and placement: equal for the runs of one setting."""
    setting = {k: v for k, v in run.config.items() if k not in NOT_A_SETTING}
    return hashlib.sha256(json.dumps(setting, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _long_form(runs: list[RunData]) -> pd.DataFrame:
    """Every metric of every strategy of every setting, seeds pooled over the runs of a setting (a
    seed met twice counts once), with `best` marked within its stream."""
    pooled: dict[tuple, dict] = {}
    for run in runs:
        for strategy, seeds in ((run.metrics or {}).get("per_seed") or {}).items():
            entry = pooled.setdefault((stream_id(run), setting_id(run), strategy), {"runs": [], "seeds": {}})
            entry["runs"].append(run)
            for seed, values in seeds.items():
                entry["seeds"].setdefault(str(seed), values)
    rows = []
    for (stream, _, strategy), entry in pooled.items():
        names = [run.path.name for run in entry["runs"]]
        label = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} runs, seeds pooled)"
        scalars = dict.fromkeys(k for values in entry["seeds"].values() for k, v in values.items()
                                if isinstance(v, (int, float)))
        for metric in scalars:
            rows.append({"stream": stream, "run": label, "run_dir": str(entry["runs"][0].path),
                         "strategy": strategy, "metric": metric,
                         **summarize([values.get(metric, math.nan) for values in entry["seeds"].values()])})
    frame = pd.DataFrame(rows, columns=["stream", "run", "run_dir", "strategy", "metric", "mean", "std",
                                        "ci95_low", "ci95_high", "n"])
    frame["best"] = False
    for (_, metric), group in frame.groupby(["stream", "metric"], sort=False):
        winners = best_rows(dict(zip(group.index, group["mean"])), metric)
        frame.loc[list(winners), "best"] = True
    return frame


def _blocks(frame: pd.DataFrame, groups: list[str], runs: list[RunData]) -> list[Block]:
    blocks: list[Block] = [
        Heading("Comparison", 1),
        Text(f"{len(runs)} run(s): " + ", ".join(user(run.path) for run in runs) + ". Mean over seeds ± "
             "half-width of the 95% confidence interval; bold = best mean within its stream (higher or lower, "
             "as the Metrics table below says); "
             "where the intervals overlap, the difference may be seed noise. Runs whose configs differ only in "
             "their seeds (a sweep over seeds) are one row: their seeds are pooled.")]
    if len(groups) > 1:
        blocks.append(Text(f"The runs use {len(groups)} different streams, so each stream has its own table; "
                           "numbers are never ranked across streams."))
    for stream in groups:
        part = frame[frame["stream"] == stream]
        shown = [m for m in columns() if m in set(part["metric"])]
        rows = []
        for (_, strategy), group in part.groupby(["run_dir", "strategy"], sort=False):
            cells = {r.metric: (Best(fmt(r._asdict())) if r.best else fmt(r._asdict()))
                     for r in group.itertuples()}
            rows.append([group["run"].iloc[0], strategy, *(cells.get(m, "n/a") for m in shown)])
        blocks += [Heading(f"Stream {stream}"), Table(["run", "strategy", *shown], rows), *_frontier(part)]
    blocks += [Heading("Metrics"), Table(["metric", "formula", "better"],
                                         [[m, METRICS[m].formula, METRICS[m].better] for m in columns()])]
    return blocks


def _frontier(part: pd.DataFrame) -> list[Block]:
    """Final accuracy against training compute, one point per (run, strategy) with 95% CIs, and the
    Pareto frontier; nothing when the runs counted no FLOPs."""
    points = {}
    for (_, strategy), group in part.groupby(["run", "strategy"], sort=False):
        by_metric = {r["metric"]: r for r in group.to_dict("records")}
        if {"acc", "train_tflops"} <= set(by_metric):
            label = strategy if part["run"].nunique() == 1 else f"{strategy} ({group['run'].iloc[0]})"
            points[label] = {"acc": by_metric["acc"], "tflops": by_metric["train_tflops"]}
    if not points:
        return []
    front = pareto_front({k: (p["tflops"]["mean"], p["acc"]["mean"]) for k, p in points.items()})
    return [Figure(figures.png(figures.frontier(points, front)),
                   "Final accuracy against the lifetime's counted training compute, mean over seeds with 95% CIs; "
                   f"on the Pareto frontier (no strategy more accurate for less compute): {', '.join(sorted(front))}.")]
