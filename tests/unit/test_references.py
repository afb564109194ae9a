"""References: cached per (stream, model, budget, evaluation, seed), reused across configs, read off
the run's own independent/joint strategies; and the run around them (no references, resume)."""

import json
import threading

import numpy as np
import pytest
import torch

from lifelong import references
from lifelong.callbacks import Callback
from lifelong.config import ExperimentConfig
from lifelong.report import ReportResult
from lifelong.references import ReferenceCache, compute_references, reference_key
from lifelong.run import resume_experiment, run_experiment
from lifelong.strategies.independent import Independent
from lifelong.strategies.joint import Joint
from lifelong.streams.builders import build_stream
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

STREAM = {"name": "tiny_repeat", "builder": "repeat", "dataset": "digits", "classes": [0, 1], "n_tasks": 3,
          "train_per_task": 40, "test_per_task": 40}


def config(tmp_path, strategies=("naive",), **fields) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": "tiny", "stream": STREAM, "model": {"hidden": [16]}, "device": "cpu",
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.05},
        "strategies": [{"name": s} for s in strategies],
        "references": {"cache_dir": str(tmp_path / "cache"), **fields.pop("references", {})}, **fields})


@pytest.fixture
def no_report(monkeypatch):
    """Tests about references skip the report (tested on its own) to stay fast."""
    monkeypatch.setattr("lifelong.run.write_report", lambda folder: ReportResult([], []))


@pytest.fixture
def trainings(monkeypatch):
    """How many times each reference learner trained (one `learn` call = one training)."""
    counts = {"independent": 0, "joint": 0}
    for kind, cls in (("independent", Independent), ("joint", Joint)):
        def counted(self, task, _learn=cls.learn, _kind=kind):
            counts[_kind] += 1
            return _learn(self, task)
        monkeypatch.setattr(cls, "learn", counted)
    return counts


def test_a_second_config_on_the_same_stream_reuses_the_references(tmp_path, trainings, no_report):
    first = run_experiment(config(tmp_path), out=tmp_path / "a", progress=False)
    assert trainings == {"independent": 3, "joint": 3}  # T = 3, joint at every k (auto for T <= 10)
    assert (first.references["cache_hits"], first.references["cache_misses"]) == (0, 6)

    second = run_experiment(config(tmp_path, strategies=("ewc",)), out=tmp_path / "b", progress=False)
    assert trainings == {"independent": 3, "joint": 3}  # nothing trained again
    assert (second.references["cache_hits"], second.references["cache_misses"]) == (6, 0)
    for kind in ("independent", "joint"):
        assert second.references["entries"][0][kind] == first.references["entries"][0][kind]
    assert second.references["entries"][0]["independent_source"] == "3 from cache, 0 trained"

    run_experiment(config(tmp_path, training={"epochs": 1, "batch_size": 16, "lr": 0.02}), out=tmp_path / "c",
                   progress=False)
    assert trainings == {"independent": 6, "joint": 6}  # another budget is another reference


def test_strategies_listed_in_the_config_are_the_references_and_match_the_trained_ones(tmp_path, trainings,
                                                                                      no_report):
    listed = run_experiment(config(tmp_path / "x", strategies=("naive", "independent", "joint")), out=tmp_path / "a",
                            progress=False)
    assert trainings == {"independent": 3, "joint": 3}  # the strategies' own lifetimes, nothing more
    entry = listed.references["entries"][0]
    assert "read from this run's strategy 'independent'" == entry["independent_source"]
    trained = run_experiment(config(tmp_path / "y"), out=tmp_path / "b", progress=False)
    # trained alone, task by task, the references equal the strategies' diagonals bit for bit
    assert trained.references["entries"][0]["independent"] == entry["independent"]
    assert trained.references["entries"][0]["joint"] == entry["joint"]


def test_joint_at_chosen_k_only_and_the_rest_trained_later(tmp_path, trainings):
    chosen = run_experiment(config(tmp_path, references={"joint_at": [2]}), out=tmp_path / "a", progress=False)
    assert trainings["joint"] == 1 and chosen.references["joint_at"] == [2]
    joint = chosen.references["entries"][0]["joint"]
    assert np.isnan(joint[0]) and np.isnan(joint[2]) and not np.isnan(joint[1])
    per_task = chosen.metrics["per_seed"]["naive"][0]["per_task"]["intransigence"]
    assert np.isnan(per_task[0]) and not np.isnan(per_task[1])
    assert "known at k = [2] of 3" in (tmp_path / "a/report.md").read_text()

    full = run_experiment(config(tmp_path, references={"joint_at": "all"}), out=tmp_path / "b", progress=False)
    assert trainings["joint"] == 3  # k = 2 came from the cache
    assert (full.references["cache_hits"], full.references["cache_misses"]) == (4, 2)


def test_no_references(tmp_path, trainings):
    result = run_experiment(config(tmp_path, references={"enabled": False}), out=tmp_path / "a", progress=False)
    assert trainings == {"independent": 0, "joint": 0} and result.references is None
    assert not (tmp_path / "a/references.json").exists() and "ntg_learn" not in result.metrics["summary"]["naive"]
    assert "not measured" in (tmp_path / "a/report.md").read_text()


class Interrupt(Callback):
    def on_task_end(self, task, record, strategy) -> None:
        if record.strategy == "ewc" and record.seed == 1 and task.id == 1:
            raise KeyboardInterrupt


def test_resume_ends_with_the_same_record_metrics_and_report(tmp_path):
    cfg = config(tmp_path, strategies=("naive", "ewc"), seeds=[0, 1])
    whole = run_experiment(cfg, out=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out=tmp_path / "cut", callbacks=[Interrupt()], progress=False)
    assert not (tmp_path / "cut/report.html").exists()
    resumed = resume_experiment(tmp_path / "cut", progress=False)
    assert (tmp_path / "cut/record.csv").read_text() == (tmp_path / "whole/record.csv").read_text()
    assert json.dumps(resumed.metrics, sort_keys=True) == json.dumps(whole.metrics, sort_keys=True)
    assert (tmp_path / "cut/report.html").is_file() and resumed.references["cache_misses"] == 0


def test_two_runs_at_once_train_each_reference_once(tmp_path, trainings):
    """Two runs on the same stream start together: one trains, the other waits on the cache entry and reads."""
    cfg = config(tmp_path)
    stream = build_stream(cfg.stream)
    start, results = threading.Barrier(2), []

    def one_run():
        start.wait()
        results.append(compute_references(cfg, stream, torch.device("cpu"), [], ReferenceCache(tmp_path / "cache")))

    runs = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    assert trainings == {"independent": 3, "joint": 3}  # once, not twice
    assert sorted((r["cache_hits"], r["cache_misses"]) for r in results) == [(0, 6), (6, 0)]
    assert results[0]["entries"][0]["joint"] == results[1]["entries"][0]["joint"]


def test_the_cache_key_changes_with_the_code_that_trains_or_scores_a_reference(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    training = cfg.training_for(cfg.strategies[0])
    key = reference_key(cfg, training, 0, torch.device("cpu"))[0]
    assert reference_key(cfg, training, 0, torch.device("cpu"))[0] == key  # stable while the code is
    source = references.module_source
    for module in ("lifelong.training", "lifelong.evaluation.evaluator", "lifelong.strategies.joint",
                   "lifelong.streams.builtin.split"):
        monkeypatch.setattr(references, "module_source",
                            lambda name, edited=module: source(name) + (b"\n# edited" if name == edited else b""))
        assert reference_key(cfg, training, 0, torch.device("cpu"))[0] != key, module
