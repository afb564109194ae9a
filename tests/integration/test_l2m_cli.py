"""End to end: `lifelong run` with `l2m: true`, then `lifelong l2m`, `lifelong compare`, reading back the
L2M outputs and the prediction flips the run wrote."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.integration.test_cli import cache, lifelong

pytestmark = pytest.mark.slow
pytest.importorskip("l2logger")


def test_a_run_writes_l2m_logs_metrics_and_flips(tmp_path):
    out = tmp_path / "run"
    result = lifelong("run", "configs/quickstart.yaml", "l2m=true", "training.epochs=1", "model.hidden=[32]",
                      "references.joint_at=[5]", cache(tmp_path), "--out", out,
                      "strategies=[{name: naive}, {name: replay, params: {buffer_size: 200}}]")
    assert result.returncode == 0, result.stderr
    record = pd.read_csv(out / "record.csv")
    R = record[record["strategy"] == "naive"].pivot(index="after_task", columns="eval_task", values="score").to_numpy()
    expert = np.array(json.loads((out / "references.json").read_text())["entries"][0]["independent"])
    l2m = json.loads((out / "l2m/metrics.json").read_text())["naive"]["0"]
    names = list(l2m["lifelong_task_names"])
    T = R.shape[1]
    # the forward transfer of (a, b), a < b: task b's normalised score after task a over the one before it;
    # b's range covers its test scores, its train-block score R[b][b] and its expert's score
    low = np.minimum(R.min(axis=0), expert)
    high = np.maximum(R.max(axis=0), expert)
    norm = lambda x, b: (x - low[b]) / (high[b] - low[b]) * 100 + 1  # noqa: E731
    expected = {(a, b): norm(R[a + 1, b], b) / norm(R[a, b], b) for a in range(T) for b in range(a + 1, T)}
    found = l2m["transfer"]["forward_transfer_ratio"]
    assert {(names.index(a), names.index(b)) for a in found for b in found[a]} == set(expected)
    for (a, b), value in expected.items():
        assert found[names[a]][names[b]] == [pytest.approx(value)]
    metrics = json.loads((out / "metrics.json").read_text())["per_seed"]["naive"]["0"]
    assert metrics["l2m_ft_ratio"] == pytest.approx(np.mean(list(expected.values())))
    assert np.isnan(metrics["l2m_se"]) and metrics["nfr"] > 0.1  # class-incremental fine-tuning forgets examples
    assert (out / "l2m/naive-seed0/preprocessed.tsv").is_file() and (out / "l2m/replay-seed0/log").is_dir()
    report = (out / "report.md").read_text()
    for heading in ("## L2M", "### naive: pairwise transfer (ratio)", "## Prediction flips", "l2m_bt_ratio"):
        assert heading in report

    again = lifelong("l2m", out / "l2m/naive-seed0/log", "--ste", out / "l2m/naive-seed0/ste", "--out", tmp_path / "x")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "x/metrics.json").read_text())["lifetime"] == pytest.approx(
        l2m["lifetime"], nan_ok=True)
    compared = lifelong("compare", out, "--out", tmp_path / "cmp")
    assert compared.returncode == 0, compared.stderr
    frame = pd.read_csv(tmp_path / "cmp/compare.csv")
    ranked = frame[frame["metric"].isin(["nfr", "l2m_bt_ratio"])]
    assert len(ranked) == 4 and ranked.groupby("metric")["best"].sum().tolist() == [1, 1]
    assert "nfr" in (tmp_path / "cmp/compare.md").read_text()
