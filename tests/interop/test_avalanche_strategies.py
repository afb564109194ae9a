"""Avalanche's strategies run by Lifelong (`name: avalanche.X`): the record they write, their params
checked against Avalanche's constructors, the streams they refuse, and resume."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

avalanche = pytest.importorskip("avalanche", reason="the `avalanche` extra is not installed")
pytestmark = pytest.mark.avalanche

from lifelong.config import ExperimentConfig, load_config  # noqa: E402
from lifelong.errors import ConfigError, UserError  # noqa: E402
from lifelong.interop.avalanche.strategies import AvalancheResumeError  # noqa: E402
from lifelong.run import RunInterrupted, resume_experiment, run_experiment  # noqa: E402
from lifelong.strategies.registry import available, strategy_class  # noqa: E402
from tests.conftest import blob_stream, context  # noqa: E402
from tests.single_thread import one_thread  # noqa: E402,F401  (autouse fixture)

SPLIT = {"name": "split3", "builder": "split", "dataset": "digits", "scenario": "class-il", "n_tasks": 3,
         "classes_per_task": 2}


def config(tmp_path, strategies, stream=SPLIT, references=False) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": "av", "stream": stream, "model": {"hidden": [32]}, "device": "cpu",
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.05}, "strategies": strategies,
        "references": {"enabled": references, "cache_dir": str(tmp_path / "cache")}})


def matrix(folder, strategy) -> np.ndarray:
    rows = pd.read_csv(folder / "record.csv").query("strategy == @strategy")
    return rows.pivot(index="after_task", columns="eval_task", values="score").to_numpy()


@pytest.mark.slow
def test_naive_and_ewc_get_the_full_record_references_and_report(tmp_path):
    strategies = [{"name": "naive"}, {"name": "avalanche.Naive"},
                  {"name": "avalanche.EWC", "params": {"ewc_lambda": 300}}]
    result = run_experiment(config(tmp_path, strategies, references=True), out=tmp_path / "run", progress=False)
    naive, av_naive, av_ewc = (matrix(result.folder, s) for s in ("naive", "avalanche.Naive", "avalanche.EWC"))
    assert av_naive.shape == av_ewc.shape == (4, 3) and not np.isnan(av_ewc).any()
    # the same seeded model Lifelong's own strategies start from: row 0 (before training) is identical
    np.testing.assert_array_equal(av_naive[0], naive[0])
    np.testing.assert_array_equal(av_ewc[0], naive[0])
    # Avalanche's Naive learns each task and, class-incremental, forgets it; EWC cannot keep a class-incremental
    # task (van de Ven et al. 2019) but its penalty visibly holds the weights: task 2 is learned far less
    assert av_naive[1, 0] > 0.9 and av_naive[2, 1] > 0.9 and av_naive[3, 0] < 0.1
    assert av_ewc[2, 1] < av_naive[2, 1] - 0.3
    metrics = json.loads((result.folder / "metrics.json").read_text())
    assert "avalanche.EWC" in json.dumps(metrics) and "ntg_learn" in json.dumps(metrics)
    assert "avalanche.EWC" in (result.folder / "report.md").read_text()


def test_every_supported_name_resolves_and_is_listed():
    names = {"Naive", "EWC", "Replay", "LwF", "SI", "AGEM", "GEM", "GDumb", "DER", "ICaRL"}
    assert {f"avalanche.{n}" for n in names} <= set(available())
    assert strategy_class("avalanche.SI").template is avalanche.training.SynapticIntelligence
    assert strategy_class("avalanche.EWC") is strategy_class("avalanche.EWC")


@pytest.mark.parametrize("scenario", ["task-il", "class-il"])
def test_training_uses_the_engines_task_masks(scenario):
    """Task-IL: the loss sees only the task's own logits, as with Lifelong's strategies, so the output
    biases of the other tasks' classes get no gradient; class-IL: every output competes."""
    stream = blob_stream(scenario=scenario)
    strategy = strategy_class("avalanche.Naive")()
    strategy.setup(context(stream))
    bias = [p for p in strategy.model.parameters()][-1]
    before = bias.detach().clone()
    strategy.learn(stream.tasks[0])
    changed = (bias.detach() != before).tolist()
    assert changed[:2] == [True, True]
    assert changed[2:] == ([False] * 4 if scenario == "task-il" else [True] * 4)


def write(tmp_path, strategy: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: c\nstream: {json.dumps(SPLIT)}\nstrategies:\n  - {strategy}\n")
    return path


def test_unknown_params_name_the_accepted_ones(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "{name: avalanche.EWC, params: {ewc_lambda: 1, lamda: 5}}"))
    message = str(error.value)
    assert "strategies.0.params.lamda" in message and "c.yaml:4" in message
    assert "accepted: ewc_lambda, mode, decay_factor, keep_importance_data" in message
    with pytest.raises(ConfigError, match=r"strategies.0.params.ewc_lambda.*Field required"):
        load_config(write(tmp_path, "{name: avalanche.EWC}"))
    with pytest.raises(ConfigError, match=r"strategies.0.params.mem_size.*valid integer"):
        load_config(write(tmp_path, "{name: avalanche.Replay, params: {mem_size: many}}"))
    with pytest.raises(ConfigError, match="Did you mean avalanche.EWC"):
        load_config(write(tmp_path, "{name: avalanche.EWc}"))


def test_params_the_constructor_rejects_stop_before_any_run_folder(tmp_path):
    cfg = config(tmp_path, [{"name": "avalanche.EWC", "params": {"ewc_lambda": 1, "mode": "sometimes"}}])
    with pytest.raises(UserError, match=r"avalanche.EWC: Avalanche rejected params .*'mode': 'sometimes'.*Mode "
                                        "must be separate or online"):
        run_experiment(cfg, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_icarl_refuses_a_stream_that_is_not_class_incremental(tmp_path):
    cfg = config(tmp_path, [{"name": "avalanche.ICaRL", "params": {"memory_size": 40}}],
                 stream={**SPLIT, "scenario": "task-il"})
    with pytest.raises(UserError, match="ICaRL serves class-incremental streams only.*is task-il"):
        run_experiment(cfg, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_gem_solves_its_qp_and_refuses_to_start_without_the_solver(tmp_path, monkeypatch):
    cfg = config(tmp_path, [{"name": "avalanche.GEM", "params": {"patterns_per_exp": 20}}])
    result = run_experiment(cfg, out=tmp_path / "run", progress=False)
    gem = matrix(result.folder, "avalanche.GEM")
    assert gem[3, 0] > 0.3  # its projected gradients keep task 1, which plain fine-tuning loses (< 0.1 above)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "quadprog" else real(name, *a))
    with pytest.raises(UserError, match=r"avalanche.GEM needs the package 'quadprog'.*"
                                        r"pip install 'lifelong\[avalanche\]'"):
        run_experiment(cfg, out=tmp_path / "without", progress=False)
    assert not (tmp_path / "without").exists()


class StopAfter:
    """Ctrl-C once `strategy` has saved its checkpoint after task `task` (0-based)."""

    def __init__(self, strategy, task):
        self.strategy, self.task = strategy, task

    def __getattr__(self, hook):
        return lambda *args: None

    def on_task_end(self, task, record, strategy) -> None:
        if record.strategy == self.strategy and task.id == self.task:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_resumed_run_retrains_to_the_checkpoint_and_ends_with_the_uninterrupted_record(tmp_path):
    strategies = [{"name": "avalanche.EWC", "params": {"ewc_lambda": 100}}]
    whole = run_experiment(config(tmp_path, strategies), out=tmp_path / "whole", progress=False)
    with pytest.raises(RunInterrupted):
        run_experiment(config(tmp_path, strategies), out=tmp_path / "run", progress=False,
                       callbacks=[StopAfter("avalanche.EWC", 1)])
    resume_experiment(tmp_path / "run", progress=False)
    np.testing.assert_array_equal(matrix(tmp_path / "run", "avalanche.EWC"), matrix(whole.folder, "avalanche.EWC"))

    # a checkpoint the retrained tasks do not reproduce is refused, not resumed from
    with pytest.raises(RunInterrupted):
        run_experiment(config(tmp_path, strategies), out=tmp_path / "bad", progress=False,
                       callbacks=[StopAfter("avalanche.EWC", 1)])
    path = tmp_path / "bad" / "checkpoints" / "avalanche.EWC-seed0.pt"
    state = torch.load(path, weights_only=True)
    weights = state["strategy"]["model"]
    first = next(iter(weights))
    weights[first] += 1e-3
    torch.save(state, path)
    with pytest.raises(AvalancheResumeError, match=rf"retrains the 2 completed task\(s\).*differs in {first}\b"):
        resume_experiment(tmp_path / "bad", progress=False)
