"""ACC / BWT / FWT with 95% CIs per stream and strategy, beside the GEM, MER and La-MAML papers' claims.

    lifelong sweep configs/sweeps/gem_protocol.yaml --jobs 2
    python benchmarks/gem_protocol_table.py reports/sweeps/gem_protocol          # a sweep folder
    python benchmarks/gem_protocol_table.py reports/gem_protocol-2026...  ...     # or run folders

Reads finished run folders only (a sweep folder stands for its runs/*). The table is the engine's
own comparison (`lifelong.report.compare.compare_runs`: seeds of one setting pooled, mean ± half
width of the Student-t 95% CI from `lifelong.evaluation.aggregate.summarize`). A claim "A beats B"
is tested on the per-seed difference of the metric (paired by seed: same stream, same seed), with
`summarize`'s CI: *holds* when the CI lies above 0, *contradicted* when it lies below, else
*inconclusive*; "BWT near zero or positive" holds when the CI's upper end is >= -NEAR_ZERO.
Prints Markdown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = ("acc", "bwt", "fwt")
NEAR_ZERO = 0.02  # |BWT| below this counts as "near zero"


@dataclass(frozen=True)
class Claim:
    source: str
    text: str
    metric: str
    winner: str
    losers: tuple[str, ...] = ()  # empty: a claim about the winner's own value (BWT >= -NEAR_ZERO)


CLAIMS = (
    Claim("GEM (Lopez-Paz & Ranzato 2017)", "GEM's ACC is above EWC's", "acc", "gem", ("ewc",)),
    Claim("GEM (Lopez-Paz & Ranzato 2017)", "GEM's ACC is above SI's", "acc", "gem", ("si",)),
    Claim("GEM (Lopez-Paz & Ranzato 2017)", "GEM's ACC is above fine-tuning's", "acc", "gem", ("naive",)),
    Claim("GEM (Lopez-Paz & Ranzato 2017)", f"GEM's BWT is near zero or positive (>= -{NEAR_ZERO})", "bwt", "gem"),
    Claim("MER (Riemer et al. 2019)", "MER's ACC is above GEM's", "acc", "mer", ("gem",)),
    Claim("MER (Riemer et al. 2019)", "MER's ACC is above ER's", "acc", "mer", ("er",)),
    Claim("La-MAML (Gupta et al. 2020)", "La-MAML's ACC is above MER's", "acc", "lamaml", ("mer",)),
    Claim("La-MAML (Gupta et al. 2020)", "La-MAML's ACC is above ER's", "acc", "lamaml", ("er",)),
)


def run_folders(paths: list[str]) -> list[Path]:
    """Finished run folders (those with metrics.json); a sweep folder stands for its runs/*."""
    found = []
    for path in map(Path, paths):
        candidates = sorted((path / "runs").iterdir()) if (path / "runs").is_dir() else [path]
        found += [c for c in candidates if (c / "metrics.json").is_file()]
    return found


def per_seed_values(runs) -> dict[tuple[str, str], dict[int, dict]]:
    """(stream, strategy) -> seed -> metric values, over every run of that stream."""
    from lifelong.report.compare import stream_id

    values: dict[tuple[str, str], dict[int, dict]] = {}
    for run in runs:
        for strategy, seeds in ((run.metrics or {}).get("per_seed") or {}).items():
            for seed, metrics in seeds.items():
                values.setdefault((stream_id(run), strategy), {}).setdefault(int(seed), metrics)
    return values


def verdict(claim: Claim, values: dict[tuple[str, str], dict[int, dict]], stream: str) -> tuple[str, str]:
    """(what was measured, holds | contradicted | inconclusive | not run)."""
    from lifelong.evaluation.aggregate import summarize

    missing = [s for s in (claim.winner, *claim.losers) if (stream, s) not in values]
    if missing:
        return f"{', '.join(missing)} not in these runs", "not run"
    winner = values[(stream, claim.winner)]
    if not claim.losers:
        s = summarize([m[claim.metric] for m in winner.values()])
        shown = f"{s['mean']:+.3f} [{s['ci95_low']:+.3f}, {s['ci95_high']:+.3f}]"
        if s["n"] < 2:
            return shown, "inconclusive"
        return shown, "holds" if s["ci95_high"] >= -NEAR_ZERO else "contradicted"
    cells, states = [], []
    for loser in claim.losers:
        other = values[(stream, loser)]
        seeds = sorted(set(winner) & set(other))
        s = summarize([winner[k][claim.metric] - other[k][claim.metric] for k in seeds])
        cells.append(f"{s['mean']:+.3f} [{s['ci95_low']:+.3f}, {s['ci95_high']:+.3f}] (n={s['n']})")
        states.append("holds" if s["ci95_low"] > 0 else "contradicted" if s["ci95_high"] < 0 else "inconclusive")
    return "; ".join(cells), states[0] if len(set(states)) == 1 else "inconclusive"


def table(paths: list[str]) -> str:
    from lifelong.report.compare import compare_runs
    from lifelong.report.rundata import load_run

    folders = run_folders(paths)
    if not folders:
        raise SystemExit(f"no finished run folder (with metrics.json) in {', '.join(paths)}")
    with tempfile.TemporaryDirectory() as out:
        frame = compare_runs(folders, out).frame
    values = per_seed_values([load_run(f) for f in folders])
    lines = [f"{len(folders)} finished run folder(s). Mean ± half-width of the 95% CI over seeds.", ""]
    for stream, part in frame[frame["metric"].isin(METRICS)].groupby("stream", sort=False):
        lines += [f"### {stream}", "", "| strategy | seeds | ACC | BWT | FWT |", "|---|---:|---:|---:|---:|"]
        for strategy, rows in part.groupby("strategy", sort=False):
            cells = {r.metric: f"{r.mean:.3f} ± {(r.ci95_high - r.ci95_low) / 2:.3f}" if r.n >= 2 else f"{r.mean:.3f}"
                     for r in rows.itertuples()}
            lines.append(f"| {strategy} | {int(rows['n'].max())} | " + " | ".join(cells.get(m, "n/a") for m in METRICS)
                         + " |")
        lines += ["", "| paper | claim | measured (difference, 95% CI) | here |", "|---|---|---|---|"]
        for claim in CLAIMS:
            measured, state = verdict(claim, values, stream)
            lines.append(f"| {claim.source} | {claim.text} | {measured} | {state} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="a sweep folder, or run folders")
    print(table(parser.parse_args().paths))


if __name__ == "__main__":
    main()
