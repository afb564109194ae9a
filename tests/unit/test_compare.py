"""`lifelong compare`: strategies side by side, grouped by stream, the best of each metric marked with
its sign in mind (higher ACC is better, lower forgetting is better)."""

import math

import pandas as pd
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.report.compare import compare_runs
from tests.unit.run_folders import forgets, keeps, write_run


def test_runs_are_grouped_by_stream_and_the_best_is_marked_by_direction(tmp_path):
    a = write_run(tmp_path / "a", {"naive": [forgets(3)], "replay": [keeps(3, 0.8)]}, stream="s1")
    b = write_run(tmp_path / "b", {"ewc": [keeps(3, 0.7)]}, stream="s1")
    c = write_run(tmp_path / "c", {"naive": [keeps(3, 0.99)]}, stream="s2")
    result = compare_runs([a, b, c], tmp_path / "out")
    frame = result.frame
    assert frame["stream"].nunique() == 2 and any("2 different streams" in note for note in result.notes)
    s1 = frame[frame["stream"].str.startswith("s1")]
    best = s1[s1["best"]].set_index("metric")
    assert best.loc["acc", "strategy"] == "replay"  # 0.8 kept beats 0.7 kept and naive's 0.1 + 0.1 + 0.9
    assert set(best.loc[["forgetting"], "strategy"]) == {"replay", "ewc"}  # both keep everything: a tie at 0
    assert not s1[(s1["strategy"] == "naive") & s1["metric"].isin(["acc", "forgetting"])]["best"].any()
    s2 = frame[frame["stream"].str.startswith("s2")]
    assert not s2["best"].any()  # one strategy alone on its stream: nothing to rank, never ranked against s1

    md = (tmp_path / "out/compare.md").read_text()
    assert md.count("## Stream s") == 2 and "never ranked across streams" in md
    assert "| a | replay | **0.8000** |" in md
    csv = pd.read_csv(tmp_path / "out/compare.csv")
    assert {"stream", "run", "strategy", "metric", "mean", "ci95_low", "ci95_high", "n", "best"} <= set(csv.columns)
    assert "<table>" in (tmp_path / "out/compare.html").read_text()


def test_cli_compare(tmp_path):
    a = write_run(tmp_path / "a", {"naive": [forgets(2), forgets(2, 0.8)]})
    result = CliRunner().invoke(app, ["compare", str(a), str(a), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "compare.html" in result.output and (tmp_path / "cmp/compare.csv").is_file()


def test_runs_that_differ_only_in_their_seeds_are_one_row_with_their_seeds_pooled(tmp_path):
    """A sweep over seeds writes one run folder per seed; the comparison pools them (a seed met twice
    counts once) and keeps apart a run whose config differs in anything else."""
    seed0 = write_run(tmp_path / "seed0", {"naive": [keeps(3, 0.6)]})
    seed1 = write_run(tmp_path / "seed1", {"naive": [keeps(3, 0.8)]}, first_seed=1)
    other = write_run(tmp_path / "other", {"naive": [keeps(3, 0.9)], "replay": [keeps(3, 0.5)]})
    frame = compare_runs([seed0, seed1, seed1, other], tmp_path / "out").frame
    acc = frame[(frame["metric"] == "acc") & (frame["strategy"] == "naive")].set_index("run")
    pooled = acc.loc["seed0 (+2 runs, seeds pooled)"]
    half = 12.706204736 * math.sqrt(0.02) / math.sqrt(2)  # t_{0.975,1} * std / sqrt(n), std of (0.6, 0.8)
    assert pooled["n"] == 2 and math.isclose(pooled["mean"], 0.7)
    assert math.isclose(pooled["ci95_high"] - pooled["mean"], half, rel_tol=1e-6)
    assert acc.loc["other", "n"] == 1 and math.isclose(acc.loc["other", "mean"], 0.9)
