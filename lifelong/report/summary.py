"""summary.md: the R matrix of every strategy and one metric table, readable in any Markdown viewer."""

from __future__ import annotations

import numpy as np

from lifelong.evaluation.record import LifetimeRecord

METRIC_COLUMNS = ("acc", "learning_acc", "bwt", "fwt", "forgetting")


def _fmt(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.4f}"


def matrix_markdown(record: LifetimeRecord) -> str:
    header = "| after \\ task | " + " | ".join(f"T{j + 1}" for j in range(record.n_tasks)) + " |"
    rule = "|---" * (record.n_tasks + 1) + "|"
    rows = [f"| {'before training' if i == 0 else f'T{i}'} | " + " | ".join(_fmt(v) for v in row) + " |"
            for i, row in enumerate(record.scores)]
    return "\n".join([header, rule, *rows])


def metrics_table(summary: dict[str, dict[str, dict]]) -> str:
    """`summary[label][metric]` holds the aggregate (mean, std, n) across seeds."""
    header = "| strategy | " + " | ".join(METRIC_COLUMNS) + " |"
    rule = "|---" * (len(METRIC_COLUMNS) + 1) + "|"
    rows = []
    for label, metrics in summary.items():
        cells = []
        for name in METRIC_COLUMNS:
            agg = metrics[name]
            spread = f" ± {agg['std']:.4f}" if agg["n"] > 1 and not np.isnan(agg["std"]) else ""
            cells.append(_fmt(agg["mean"]) + spread)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def summary_markdown(name: str, stream_name: str, records: list[LifetimeRecord], summary: dict) -> str:
    score = records[0].score_name
    seeds = sorted({r.seed for r in records})
    parts = [f"# {name}", "",
             f"Stream `{stream_name}`, {records[0].n_tasks} tasks, seeds {seeds}. Score: {score}"
             + (" (negative mean squared error: higher is better)" if score == "neg_mse" else "") + ".", "",
             "## Metrics", "",
             "Mean over seeds (± sample std). acc: mean final score; learning_acc: mean score right after "
             "each task; bwt / fwt: GEM backward / forward transfer (divided by T-1); forgetting: Chaudhry "
             "max-based, max over rows after the task was trained, before the final row.", "",
             metrics_table(summary), "",
             "## Score matrices", "",
             "Row = after training task i (first row: before any training), column = evaluated task.", ""]
    for record in records:
        parts += [f"### {record.strategy}, seed {record.seed}", "", matrix_markdown(record), ""]
    return "\n".join(parts)
