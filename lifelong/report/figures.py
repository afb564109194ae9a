"""The report's plots as matplotlib Figures (`png` turns one into bytes). Uses the object API with
the Agg renderer (no pyplot, no display, no global backend switch), so it runs headless."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

from lifelong.report.coarsen import TaskBlocks, curve_tasks

ANNOTATE_UP_TO = 12  # write the values into heatmap cells only while they stay legible
FLAG_COLOR = "#c0392b"


def png(fig: Figure, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure of `rows` x `cols` panels with fixed margins in inches. Fixed margins instead of
    matplotlib's layout engines halve the drawing time (they lay every text out several times)."""
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.25 / width, bottom=0.55 / height, top=1 - 0.35 / height,
                        wspace=0.4, hspace=0.75 if rows > 1 else 0.2)
    return fig, axes


def _grid(n: int, width: float, height: float, max_cols: int = 4) -> tuple[Figure, list]:
    """One panel per strategy, up to `max_cols` a row."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = _figure(width * cols, height * rows, rows, cols)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _task_ticks(n: int, count: int = 10) -> list[int]:
    return list(range(0, n, max(1, math.ceil(n / count))))


def _color_range(values: np.ndarray, bounded: bool) -> tuple[float, float]:
    if bounded:
        return 0.0, 1.0
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def heatmaps(matrices: dict[str, np.ndarray], score_name: str, blocks: TaskBlocks | None = None) -> Figure:
    """One heatmap per strategy: rows = after training task i (row 0 = before training), columns = task;
    with coarse `blocks`, rows and columns are blocks of tasks. Unevaluated (NaN) cells stay blank."""
    T = next(iter(matrices.values())).shape[1]
    blocks = blocks or TaskBlocks(T, 1)
    shown = {label: blocks.matrix(matrix) for label, matrix in matrices.items()}
    names = [str(start + 1) for start in blocks.starts]  # a block is named by its first task
    unit = f" (blocks of {blocks.size}, first task shown)" if blocks.coarse else ""
    fig, axes = _grid(len(shown), 4.2, 3.8)
    low, high = _color_range(np.concatenate([m.ravel() for m in shown.values()]), score_name == "accuracy")
    for ax, (label, matrix) in zip(axes, shown.items()):
        n = matrix.shape[1]
        image = ax.imshow(matrix, vmin=low, vmax=high, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_title(label)
        ax.set_xlabel("evaluated task" + unit, fontsize=8 if blocks.coarse else None)
        ax.set_ylabel("after training task" + unit, fontsize=8 if blocks.coarse else None)
        columns = _task_ticks(n, 5 if blocks.coarse else 10)  # wide labels: fewer of them
        ax.set_xticks(columns, [names[j] for j in columns])
        rows = [0, *[i + 1 for i in _task_ticks(n) if i or not blocks.coarse]]  # thin rows: "1" would hit "before"
        ax.set_yticks(rows, ["before" if i == 0 else names[i - 1] for i in rows])
        if n <= ANNOTATE_UP_TO:
            for (i, j), v in np.ndenumerate(matrix):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < low + 0.6 * (high - low) else "black")
    fig.colorbar(image, ax=axes, shrink=0.8, label=score_name)
    return fig


def lifetime(matrices: dict[str, np.ndarray], score_name: str) -> Figure:
    """Score of every task over the lifetime (the classic forgetting plot): dotted before the task is
    trained, solid from its own training on; above FULL_UP_TO tasks, CURVES evenly spaced tasks."""
    fig, axes = _grid(len(matrices), 4.6, 3.4)
    for ax, (label, matrix) in zip(axes, matrices.items()):
        T = matrix.shape[1]
        drawn = curve_tasks(T)
        steps = np.arange(T + 1)
        for n, j in enumerate(drawn):
            color = f"C{n % 10}"
            evaluated = ~np.isnan(matrix[:, j])  # join the evaluated points over rows left NaN by a schedule
            before, after = evaluated & (steps <= j + 1), evaluated & (steps >= j + 1)
            ax.plot(steps[before], matrix[before, j], ":", color=color, linewidth=0.8)
            ax.plot(steps[after], matrix[after, j], "-", color=color, linewidth=1.4,
                    label=f"task {j + 1}" if len(drawn) <= 10 else None)
        ax.set_title(label)
        ax.set_xlabel("after training task (0 = before)")
        ax.set_ylabel(score_name)
        if len(drawn) <= 10:
            ax.legend(fontsize=6, ncol=2)
    return fig


def per_task_bars(panels: list[tuple[str, dict[str, list[dict]], dict[str, list[bool]]]],
                  blocks: TaskBlocks | None = None) -> Figure:
    """One panel per (title, values, flags): grouped bars per task, one colour per strategy, 95% CI
    whiskers (with >= 2 seeds), and a red triangle over every flagged task. With coarse `blocks`, one
    bar per block: the mean of its tasks' means, whiskers from their lowest to their highest mean,
    and a triangle over a block holding a flagged task."""
    labels = list(panels[0][1])
    T = len(panels[0][1][labels[0]])
    blocks = blocks or TaskBlocks(T, 1)
    n = len(blocks.starts)
    fig, axes = _figure(min(16.0, 3 + 0.35 * n * max(1.0, len(labels) / 2)), 2.6 * len(panels), len(panels))
    for ax, (title, values, flags) in zip(axes[:, 0], panels):
        _bars(ax, values, flags, blocks)
        ax.set_title(title, fontsize=10)
    axes[0, 0].legend(fontsize=7, ncol=min(len(labels) + 1, 5))
    axes[-1, 0].set_xlabel("task" + (f" (blocks of {blocks.size}, first task shown)" if blocks.coarse else ""))
    return fig


def _bars(ax, values: dict[str, list[dict]], flags: dict[str, list[bool]], blocks: TaskBlocks) -> None:
    n_bars = len(blocks.starts)
    width = 0.8 / len(values)
    x = np.arange(n_bars)
    flag_label = "flagged (see the rule above)"
    for n, (label, aggs) in enumerate(values.items()):
        mean = np.array([a["mean"] for a in aggs], dtype=float)
        if blocks.coarse:
            shown = blocks.reduce(mean)
            errors = np.nan_to_num([shown - blocks.reduce(mean, how=np.nanmin),
                                    blocks.reduce(mean, how=np.nanmax) - shown])
        else:
            shown = mean
            errors = np.nan_to_num(np.array([a["ci95_high"] - a["mean"] for a in aggs], dtype=float))
        pos = x - 0.4 + width * (n + 0.5)
        ax.bar(pos, shown, width, yerr=errors, capsize=2 if n_bars <= 60 else 0,  # NaN: no bar, never 0
               color=f"C{n}", label=label, error_kw={"linewidth": 0.8})
        marked = np.array(flags.get(label) or [False] * blocks.n_tasks, dtype=float)
        marked = blocks.reduce(marked, how=np.nanmax) > 0
        if marked.any():
            tops = np.nan_to_num(shown) + (errors[1] if blocks.coarse else errors)
            ax.plot(pos[marked], tops[marked], "v", color=FLAG_COLOR, markersize=7, label=flag_label)
            flag_label = None  # one legend entry for all flags
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(_task_ticks(n_bars), [str(blocks.starts[j] + 1) for j in _task_ticks(n_bars)])


def adaptation_curves(curves: dict[str, list[np.ndarray]], score_name: str) -> Figure:
    """Few-shot adaptation curves, mean over tasks and then over seeds (band = min..max over seeds):
    left, each task adapted just before its own training; right, every task at the end."""
    fig, axes = _figure(10, 3.4, 1, 2)
    left, right = axes[0]
    for n, (label, per_seed) in enumerate(curves.items()):
        for ax, pick in ((left, _before_own_training), (right, lambda c: c[-1])):
            seeds = np.array([np.nanmean(pick(c), axis=0) for c in per_seed])  # (seeds, steps)
            steps = np.arange(seeds.shape[1])
            ax.plot(steps, seeds.mean(0), "-o", color=f"C{n}", markersize=3, label=label)
            if len(seeds) > 1:
                ax.fill_between(steps, seeds.min(0), seeds.max(0), color=f"C{n}", alpha=0.15)
    for ax, title in ((left, "each task just before its own training"), (right, "every task at the end")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("adaptation steps on the support set")
        ax.set_ylabel(score_name)
    right.legend(fontsize=7)
    return fig


def _before_own_training(curves: np.ndarray) -> np.ndarray:
    n = curves.shape[1]
    return curves[np.arange(n), np.arange(n)]


def frontier(points: dict[str, dict[str, dict]], front: set[str]) -> Figure:
    """Final accuracy against training TFLOPs per strategy: dot = mean over seeds, whiskers = 95% CI
    on both axes, the Pareto frontier (`front`) joined by a dashed line. `points`: label ->
    {"acc": aggregate, "tflops": aggregate} (aggregates as lifelong.evaluation.aggregate.summarize)."""
    fig, axes = _figure(6.0, 4.0)
    ax = axes[0, 0]
    for n, (label, p) in enumerate(points.items()):
        xerr, yerr = (np.nan_to_num(p[k]["ci95_high"] - p[k]["mean"]) for k in ("tflops", "acc"))
        ax.errorbar([p["tflops"]["mean"]], [p["acc"]["mean"]], xerr=[xerr], yerr=[yerr], fmt="o",
                    color=f"C{n % 10}", capsize=3, label=label)
    line = sorted((points[k]["tflops"]["mean"], points[k]["acc"]["mean"]) for k in front)
    if len(line) > 1:
        ax.plot(*zip(*line), "--", color="grey", linewidth=1, label="Pareto frontier")
    ax.set_xlabel("training compute (TFLOP, counted)")
    ax.set_ylabel("final score ACC (higher is better)")
    ax.legend(fontsize=7)
    return fig
