"""L2M: the l2logger log a lifetime becomes (read back with l2logger's own reader and validator), the
metrics on a tiny log against values worked out by hand, a cross-check against l2metrics itself (in
its own environment), bad logs, the missing package, and a stream too short for a metric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lifelong.cli import app
from lifelong.evaluation.record import LifetimeRecord
from lifelong.l2m import L2MError, L2MPackageMissing, require_l2logger
from lifelong.l2m.compute import compute
from lifelong.l2m.log import write_expert_log, write_lifetime_log

l2logger_util = pytest.importorskip("l2logger.util")

R = np.array([[0.2, 0.1],    # before training
              [0.8, 0.3],    # after task 1
              [0.6, 0.9]])   # after task 2
EXPERT = 0.9  # the independent learner's score on each task


def tiny(tmp_path: Path, scores=R, names=("T1", "T2")) -> tuple[Path, dict[str, Path]]:
    record = LifetimeRecord("naive", 0, list(names), "classification", np.array(scores, dtype=float),
                            completed=len(names))
    log = write_lifetime_log(record, tmp_path / "log", {"seed": 0})
    experts = {f"task{j + 1}_{n.lower()}": write_expert_log(j, n, EXPERT, "accuracy", tmp_path / "ste" / n, {})
               for j, n in enumerate(names)}
    return log, experts


def test_the_log_is_l2logger_format_in_train_and_test_blocks(tmp_path):
    log, experts = tiny(tmp_path)
    info = l2logger_util.read_logger_info(log)
    data = l2logger_util.read_log_data(log)
    l2logger_util.validate_log(data, info["metrics_columns"])  # raises on a malformed log
    assert info["metrics_columns"] == ["accuracy"] and l2logger_util.read_scenario_info(log)["seed"] == 0
    blocks = [(b, t, name, v) for b, t, name, v in zip(data.block_num, data.block_type, data.task_name, data.accuracy)]
    assert blocks == [(0, "test", "task1_t1", 0.2), (0, "test", "task2_t2", 0.1),
                      (1, "train", "task1_t1", 0.8),
                      (2, "test", "task1_t1", 0.8), (2, "test", "task2_t2", 0.3),
                      (3, "train", "task2_t2", 0.9),
                      (4, "test", "task1_t1", 0.6), (4, "test", "task2_t2", 0.9)]
    assert data.exp_num.tolist() == list(range(8)) and set(data.worker_id) == {"lifelong"}
    expert = l2logger_util.read_log_data(experts["task2_t2"])
    assert expert.block_type.tolist() == ["train", "test"] and expert.accuracy.tolist() == [0.9, 0.9]


def test_metrics_match_the_hand_worked_values(tmp_path):
    result = compute(*tiny(tmp_path))
    # normalisation per task over its values and its expert's: task 1 in [0.2, 0.9], task 2 in [0.1, 0.9]
    t1 = lambda x: (x - 0.2) / 0.7 * 100 + 1  # noqa: E731
    t2 = lambda x: (x - 0.1) / 0.8 * 100 + 1  # noqa: E731
    assert result.data_range == {"task1_t1": {"min": 0.2, "max": 0.9}, "task2_t2": {"min": 0.1, "max": 0.9}}
    assert result.data["normalized"].tolist() == pytest.approx([1, 1, t1(0.8), t1(0.8), t2(0.3), 101, t1(0.6), 101])
    ratio, contrast = result.transfer["forward_transfer_ratio"], result.transfer["forward_transfer_contrast"]
    assert ratio == {"task1_t1": {"task2_t2": [pytest.approx(t2(0.3) / 1)]}}  # task 2 tested around task 1's block
    assert contrast["task1_t1"]["task2_t2"][0] == pytest.approx((t2(0.3) - 1) / (t2(0.3) + 1))
    back = result.transfer["backward_transfer_ratio"]  # task 1 tested around task 2's block, after its own
    assert back == {"task2_t2": {"task1_t1": [pytest.approx(t1(0.6) / t1(0.8))]}}
    lifetime = result.lifetime
    assert lifetime["forward_transfer_ratio"] == pytest.approx(26.0)
    assert lifetime["backward_transfer_contrast"] == pytest.approx(-200 / 1014)
    assert lifetime["perf_maintenance_mrlep"] == pytest.approx(t1(0.6) - t1(0.8))  # task 1 only: -200/7
    assert lifetime["ste_rel_perf"] == pytest.approx((t1(0.8) / 101 + 1) / 2)
    assert np.isnan(lifetime["sample_efficiency"]) and np.isnan(lifetime["perf_recovery"])
    assert "first experience" in result.reasons["sample_efficiency"]
    assert "three or more blocks" in result.reasons["perf_recovery"]


def curves_log(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A log with learning curves inside training blocks and a task trained three times (for sample
    efficiency and performance recovery), with curve-shaped expert logs."""
    l2logger, _ = require_l2logger()
    rng = np.random.default_rng(0)
    log = l2logger.DataLogger(str(tmp_path), "curves", {"metrics_columns": ["performance"]},
                              {"scenario_type": "custom", "complexity": "1-low", "difficulty": "2-medium"})
    exp, block = 0, 0

    def record(block_type, task, value):
        nonlocal exp
        log.log_record({"block_num": block, "block_type": block_type, "exp_num": exp, "worker_id": "w",
                        "task_name": task, "task_params": {}, "performance": float(value)})
        exp += 1

    def test_all():
        for task in ("a_1", "b_1"):
            for _ in range(3):
                record("test", task, rng.uniform(0, 1))

    test_all()
    for task, level in (("a_1", 0.6), ("b_1", 0.7), ("a_1", 0.8), ("b_1", 0.75), ("a_1", 0.9)):
        block += 1
        for k in range(30):
            record("train", task, level * (1 - np.exp(-k / 6)) + rng.normal(0, 0.03))
        block += 1
        test_all()
    log.close()
    experts = {}
    for task in ("a_1", "b_1"):
        expert = l2logger.DataLogger(str(tmp_path), f"ste_{task}", {"metrics_columns": ["performance"]},
                                     {"scenario_type": "ste"})
        for k in range(40):
            expert.log_record({"block_num": 0, "block_type": "train", "exp_num": k, "worker_id": "w",
                               "task_name": task, "task_params": {}, "performance": 0.8 * (1 - np.exp(-k / 9))})
        expert.close()
        experts[task] = Path(expert.scenario_dir)
    return Path(log.scenario_dir), experts


def probed_log(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A played lifetime (naive on blobs) with within-task curves, and expert logs from the curves of
    the independent learner on the same stream: what `lifelong l2m` writes for such a run."""
    import dataclasses

    from lifelong.evaluation.fewshot import EvaluationSpec
    from lifelong.orchestrator import play
    from lifelong.strategies.registry import strategy_class
    from tests.conftest import blob_stream, context

    stream = blob_stream(n_tasks=3, n_per_class=40)
    records = {}
    for name in ("naive", "independent"):
        ctx = dataclasses.replace(context(stream, epochs=2, lr=0.02), evaluation=EvaluationSpec(within_task_every=1))
        strategy = strategy_class(name)()
        strategy.setup(ctx)
        records[name] = play(strategy, ctx, name)
    naive, independent = records["naive"], records["independent"]
    log = write_lifetime_log(naive, tmp_path / "log", {"seed": 0})
    experts = {f"task{j + 1}_{n.lower()}": write_expert_log(
        j, n, independent.scores[j + 1, j], "accuracy", tmp_path / "ste" / n, {},
        [point[3] for point in independent.within_task[j]]) for j, n in enumerate(naive.task_names)}
    return log, experts


def test_within_task_curves_give_sample_efficiency(tmp_path):
    log, experts = probed_log(tmp_path)
    data = l2logger_util.read_log_data(log)
    assert (data["block_type"] == "train").sum() == 3 * 10  # 80 examples, batch 16: 5 steps x 2 epochs, each probed
    result = compute(log, experts)
    values = [result.per_task[task]["sample_efficiency"] for task in result.tasks]
    assert np.isfinite(values).all() and "sample_efficiency" not in result.reasons


def test_curves_give_sample_efficiency_and_performance_recovery(tmp_path):
    result = compute(*curves_log(tmp_path))
    assert np.isfinite(result.lifetime["sample_efficiency"]) and result.lifetime["sample_efficiency"] > 0
    assert result.per_task["a_1"]["recovery_times"] and np.isfinite(result.per_task["a_1"]["perf_recovery"])
    assert not result.reasons


L2METRICS_PYTHON = os.environ.get("L2METRICS_PYTHON")  # a Python with l2metrics 3.1.0 and NumPy < 2

CROSS_CHECK = r"""
import json, sys
from pathlib import Path
from l2metrics import util
from l2metrics.report import MetricsReport
log, experts = sys.argv[1], json.loads(sys.argv[2])
for path in experts.values():
    util.store_ste_data(Path(path))
report = MetricsReport(log_dir=log, perf_measure=sys.argv[3], transfer_method="both")
report.calculate()
print(json.dumps(report.ll_metrics_dict, default=str))
"""


SPARSE = np.array([[0.2, 0.1, 0.1, 0.1], [np.nan] * 4, [0.8, 0.7, 0.3, 0.2], [np.nan] * 4,
                   [0.5, 0.6, 0.7, 0.9]])  # evaluation.every: 2


@pytest.mark.skipif(not L2METRICS_PYTHON, reason="set L2METRICS_PYTHON to a Python with l2metrics 3.1.0 "
                                                  "(it needs NumPy < 2) to cross-check against it")
@pytest.mark.parametrize("which", ["lifetime", "sparse", "curves", "probed"])
def test_values_equal_l2metrics_on_the_same_logs(tmp_path, which):
    logs = {"lifetime": lambda: tiny(tmp_path), "sparse": lambda: tiny(tmp_path, SPARSE, ("a", "b", "c", "d")),
            "curves": lambda: curves_log(tmp_path), "probed": lambda: probed_log(tmp_path)}
    log, experts = logs[which]()
    column = "performance" if which == "curves" else "accuracy"
    env = {**os.environ, "L2DATA": str(tmp_path / "l2data")}
    out = subprocess.run([L2METRICS_PYTHON, "-c", CROSS_CHECK, str(log), json.dumps({k: str(v) for k, v in
                                                                                     experts.items()}), column],
                         capture_output=True, text=True, env=env, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = compute(log, experts)
    for key, value in ours.lifetime.items():
        expected = theirs[key]
        assert (value == pytest.approx(expected)) if expected is not None else np.isnan(value), key
    for task, values in ours.per_task.items():
        for key in ("perf_recovery", "ste_rel_perf", "sample_efficiency", "perf_maintenance_mrlep"):
            expected = theirs["task_metrics"][task][key]
            assert values.get(key, np.nan) == pytest.approx(expected, nan_ok=True), (task, key)
    for key, pairs in ours.transfer.items():
        assert sum(map(len, pairs.values())) == sum(map(len, (theirs["task_metrics"][t][key] for t in ours.tasks)))
        for a, evaluated in pairs.items():
            for b, values in evaluated.items():
                assert values == pytest.approx(theirs["task_metrics"][a][key][b]), (key, a, b)  # [trained][tested]


def test_a_log_in_the_wrong_format_is_a_clear_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["l2m", str(tmp_path)])
    assert result.exit_code == 2 and "has no logger_info.json, so it is not an l2logger log" in result.output
    log, _ = tiny(tmp_path)
    tsv = next(log.rglob("data-log.tsv"))
    tsv.write_text(tsv.read_text().replace("\ttest\t", "\tevaluate\t"))
    with pytest.raises(L2MError, match="is not a valid l2logger log .*block_type must be one of"):
        compute(log)
    result = runner.invoke(app, ["l2m", str(log)])
    assert result.exit_code == 2 and "not a valid l2logger log" in result.output and "Traceback" not in result.output
    tsv.write_text(tsv.read_text().replace("\tevaluate\t", "\ttest\t").replace("\twake\t", "\tsleep\t"))
    with pytest.raises(L2MError, match="has sleep blocks; .* use l2metrics itself"):
        compute(log)


def test_without_l2logger_the_message_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "l2logger", None)  # as if not installed
    with pytest.raises(L2MPackageMissing, match=r"pip install 'lifelong\[l2m\]'"):
        require_l2logger()
    result = CliRunner().invoke(app, ["l2m", str(tmp_path)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "pip install 'lifelong[l2m]'" in result.output


def test_one_task_is_too_short_for_transfer_and_maintenance(tmp_path):
    result = compute(*tiny(tmp_path, scores=[[0.1], [0.8]], names=("T1",)))
    for key in ("forward_transfer_ratio", "backward_transfer_ratio", "perf_maintenance_mrlep", "perf_recovery"):
        assert np.isnan(result.lifetime[key]) and result.reasons[key], key
    # range [0.1, 0.9] with the expert's 0.9: the trained score 0.8 normalises to 1 + 100·7/8, the expert's to 101
    assert result.lifetime["ste_rel_perf"] == pytest.approx((1 + 100 * 7 / 8) / 101)


def test_a_config_asking_for_l2m_without_l2logger_fails_before_training(tmp_path, monkeypatch):
    from tests.unit.test_run_folder import config
    from lifelong.run import run_experiment

    monkeypatch.setitem(sys.modules, "l2logger", None)
    with pytest.raises(L2MPackageMissing, match=r"pip install 'lifelong\[l2m\]'"):
        run_experiment(config(tmp_path, l2m=True), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing trained, no folder left behind


def test_a_damaged_l2m_file_is_a_note_in_the_report_not_a_crash(tmp_path):
    from lifelong.report import write_report
    from tests.unit.run_folders import keeps, write_run

    run = write_run(tmp_path / "run", {"naive": [keeps(3)]})
    (run / "l2m").mkdir()
    (run / "l2m/metrics.json").write_text('{"naive": {"0": {"lifetime": ')  # cut short
    result = write_report(run)
    assert any(note.startswith("L2M metrics cannot be read") for note in result.notes)
    assert "## Glossary" in (run / "report.md").read_text()


def test_lifelong_l2m_on_a_finished_run_adds_its_l2m_metrics(tmp_path):
    from lifelong.run import run_experiment
    from tests.unit.test_run_folder import config

    run = run_experiment(config(tmp_path), out=tmp_path / "run", progress=False)
    assert "l2m_ft_ratio" not in run.metrics["per_seed"]["naive"][0] and not (tmp_path / "run/l2m").exists()
    result = CliRunner().invoke(app, ["l2m", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    l2m = json.loads((tmp_path / "run/l2m/metrics.json").read_text())["naive"]["0"]
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())["per_seed"]["naive"]["0"]
    assert metrics["l2m_ft_ratio"] == pytest.approx(l2m["lifetime"]["forward_transfer_ratio"])
    assert metrics["acc"] == run.metrics["per_seed"]["naive"][0]["acc"]  # the rest is unchanged
    terminal = (tmp_path / "run/l2m/naive-seed0/terminal.tsv").read_text().splitlines()
    assert len(terminal) == 1 + 4 * 3 + 3  # header, 4 test blocks of 3 tasks, 3 train blocks
    assert "## L2M" in (tmp_path / "run/report.md").read_text()
