"""The report's "Cost" section: what each strategy's lifetime cost (counted FLOPs, energy, time,
memory, what it stored) and the accuracy-compute frontier. `lifelong compare` draws the same
frontier across runs. Everything comes from timings.csv (lifelong.cost) and the metrics."""

from __future__ import annotations

import numpy as np

from lifelong.evaluation.aggregate import summarize
from lifelong.evaluation.efficiency import pareto_front
from lifelong.report import figures
from lifelong.report.coarsen import TaskBlocks
from lifelong.report.render import Block, Figure, Heading, Table, Text, user
from lifelong.report.rundata import RunData

PER_TASK = (("train_flops", "training FLOPs (counted)"), ("energy_j", "training energy (J)"),
            ("train_seconds", "training wall time (s)"))


def cost_section(run: RunData, metrics: dict) -> list[Block]:
    """The section, or nothing when the run counted no cost (`cost: off`, older runs)."""
    timings = run.timings
    if timings is None or "train_flops" not in timings.columns:
        return []
    estimated = "estimated" in " ".join(timings.get("energy_method", []).dropna().astype(str))
    blocks: list[Block] = [Heading("Cost"), Text(_methods(timings)), _totals(timings, estimated)]
    blocks.append(Figure(figures.png(_per_task_figure(timings, estimated)),
                         "Per task, mean over seeds (whiskers: 95% CI with two seeds or more): counted training "
                         "FLOPs, training energy (where measured or estimated) and wall time. No bar where a figure "
                         "is unavailable."))
    summary = metrics.get("summary") or {}
    points = {label: {"acc": s["acc"], "tflops": s["train_tflops"]} for label, s in summary.items()
              if "acc" in s and "train_tflops" in s}
    if len(points) > 1:  # a frontier needs two strategies
        front = pareto_front({k: (p["tflops"]["mean"], p["acc"]["mean"]) for k, p in points.items()})
        blocks.append(Figure(figures.png(figures.frontier(points, front)),
                             "Accuracy against compute: final accuracy ACC and the lifetime's counted training "
                             "TFLOPs per strategy, mean over seeds with 95% CIs on both axes. On the Pareto "
                             f"frontier (no strategy more accurate for less compute): {', '.join(sorted(front))}."))
    return blocks


def _methods(timings) -> str:
    def used(column: str) -> str:
        return "; ".join(sorted(set(timings[column].dropna().astype(str)))) if column in timings else "n/a"

    energy = used("energy_method")
    caveat = (" Energy figures marked *estimated* are CodeCarbon's model of the hardware, not a measurement."
              if "estimated" in energy else "")
    return (f"FLOPs: {user(used('flops_method'))} (a multiply-add = 2 FLOPs; matrix products and convolutions "
            f"only). Energy: {user(energy)}.{caveat} Peak memory: {user(used('memory_method'))}. Gradient steps "
            "are optimiser updates; samples are the task's training examples drawn by the training steps.")


def _totals(timings, estimated: bool) -> Table:
    """Per strategy, the lifetime's totals (mean over seeds) and what it holds at the end."""
    rows = []
    for label, frame in timings.groupby("strategy", sort=False):
        per_seed = frame.groupby("seed")
        total = {k: per_seed[k].sum(min_count=1) for k in ("train_flops", "eval_flops", "gradient_steps",
                                                          "samples_seen", "energy_j", "train_seconds")
                 if k in frame}
        last = frame[frame["task"] == frame["task"].max()]
        rows.append([label, *(_mean(total.get(k), scale, digits) for k, scale, digits in (
            ("train_flops", 1e9, 2), ("eval_flops", 1e9, 2), ("gradient_steps", 1, 0), ("samples_seen", 1, 0),
            ("energy_j", 1e3, 3), ("train_seconds", 1, 2))),
            _mean(last.get("stored_examples"), 1, 0), _mean(last.get("model_parameters"), 1, 0),
            _mean(per_seed["peak_memory_mb"].max(), 1, 0)])
    energy = "energy kJ (estimated)" if estimated else "energy kJ"
    return Table(["strategy", "training GFLOP", "evaluation GFLOP", "gradient steps", "samples", energy,
                  "training s", "stored examples (end)", "parameters (end)", "peak memory MB"], rows,
                 "Lifetime totals, mean over seeds; n/a = not available (see the methods above).")


def _mean(values, scale: float, digits: int) -> str:
    if values is None:
        return "n/a"
    mean = summarize(np.asarray(values, dtype=float) / scale)["mean"]
    return "n/a" if np.isnan(mean) else f"{mean:,.{digits}f}"


def _per_task_figure(timings, estimated: bool):
    n_tasks = int(timings["task"].max()) + 1
    panels = []
    for column, title in PER_TASK:
        if column not in timings or timings[column].isna().all():  # energy without a backend: said above
            continue
        values = {}
        for label, frame in timings.groupby("strategy", sort=False):
            table = frame.pivot_table(index="seed", columns="task", values=column, dropna=False)
            table = table.reindex(columns=range(n_tasks))
            values[label] = [summarize(table[task]) for task in range(n_tasks)]
        panels.append((title + (", estimated (see above)" if column == "energy_j" and estimated else ""),
                       values, {}))
    return figures.per_task_bars(panels, TaskBlocks.for_tasks(n_tasks))
