"""configs/gem_protocol.yaml and its sweep: the published single-pass protocol, field by field; and the
table script that sets the finished runs beside the papers' claims."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

import lifelong.config
from lifelong.config import load_config
from lifelong.strategies.naive import Naive
from lifelong.strategies.registry import UnknownStrategyError, strategy_class
from lifelong.streams.builders import build_stream
from lifelong.sweep.spec import load_sweep
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[2]
STRATEGIES = ["naive", "ewc", "si", "gem", "agem", "er", "mer", "lamaml", "independent", "joint"]


class AnyParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class NotYetMerged(Naive):
    """Stands in for a strategy another branch adds (si, gem, ...), so the config's other fields are checked."""

    Params = AnyParams


@pytest.fixture
def every_name_resolves(monkeypatch):
    def resolve(name):
        try:
            return strategy_class(name)
        except UnknownStrategyError:
            return NotYetMerged
    monkeypatch.setattr(lifelong.config, "strategy_class", resolve)


def test_gem_protocol_config_is_the_papers_single_pass_protocol(every_name_resolves):
    config = load_config(REPO / "configs" / "gem_protocol.yaml")
    assert [s.display_name for s in config.strategies] == STRATEGIES
    assert config.seeds == [0, 1, 2, 3, 4]
    assert config.model.hidden == [100, 100] and config.model.type == "mlp"
    assert (config.training.epochs, config.training.batch_size) == (1, 10)
    assert all(config.training_for(entry) == config.training for entry in config.strategies)
    spec = config.stream
    assert (spec.builder, spec.dataset, spec.n_tasks, spec.train_per_task) == ("permuted", "fashion_mnist", 20, 1000)


def test_gem_protocol_sweep_runs_permuted_and_rotated_fashion_mnist_over_five_seeds(every_name_resolves):
    sweep = load_sweep(REPO / "configs" / "sweeps" / "gem_protocol.yaml")
    assert len(sweep.runs) == 2 * len(STRATEGIES) * 5  # one run per stream, strategy and seed
    base = {s.display_name: s for s in load_config(REPO / "configs" / "gem_protocol.yaml").strategies}
    streams = {}
    for run in sweep.runs:
        spec, (strategy,) = run.config.stream, run.config.strategies
        streams.setdefault((spec.builder, strategy.display_name), []).extend(run.config.seeds)
        assert (spec.n_tasks, spec.train_per_task, spec.dataset) == (20, 1000, "fashion_mnist")
        assert (run.config.training.batch_size, run.config.training.epochs) == (10, 1)
        assert strategy.params == base[strategy.display_name].params  # e.g. EWC's lambda 1, ER's buffer
    assert streams == {(builder, name): [0, 1, 2, 3, 4] for builder in ("permuted", "rotated") for name in STRATEGIES}


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed")
def test_gem_protocol_streams_build_with_1000_training_examples_per_task(every_name_resolves):
    sweep = load_sweep(REPO / "configs" / "sweeps" / "gem_protocol.yaml")
    for run in sweep.runs[::5]:
        stream = build_stream(run.config.stream)
        assert len(stream) == 20 and stream.scenario == "domain-il"
        assert len(stream.tasks[0].x_train) == 1000 and stream.input_shape == (1, 28, 28)


def table_module():
    spec = importlib.util.spec_from_file_location("gem_protocol_table", REPO / "benchmarks" / "gem_protocol_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_table_reports_the_runs_metrics_with_cis_and_judges_claims_on_paired_seed_differences(tmp_path):
    from lifelong.config import ExperimentConfig
    from lifelong.evaluation.aggregate import summarize
    from lifelong.run import run_experiment

    config = ExperimentConfig.model_validate({
        "name": "tiny", "stream": {"name": "s", "builder": "split", "n_tasks": 2, "train_per_task": 60,
                                   "test_per_task": 40},
        "model": {"hidden": [16]}, "training": {"epochs": 1, "batch_size": 10, "lr": 0.1},
        "strategies": [{"name": "naive"}, {"name": "replay", "label": "er", "params": {"buffer_size": 50}},
                       {"name": "ewc"}],
        "seeds": [0, 1], "references": {"enabled": False}})
    result = run_experiment(config, out=tmp_path / "run", progress=False)
    module = table_module()
    text = module.table([str(tmp_path / "run")])
    acc = summarize([result.metrics["per_seed"]["er"][seed]["acc"] for seed in (0, 1)])
    assert f"| er | 2 | {acc['mean']:.3f} ± {(acc['ci95_high'] - acc['ci95_low']) / 2:.3f} |" in text
    assert "| GEM (Lopez-Paz & Ranzato 2017) | GEM's ACC is above EWC's | gem not in these runs | not run |" in text
    values = {("s", "a"): {0: {"acc": 0.9}, 1: {"acc": 0.8}, 2: {"acc": 0.7}},
              ("s", "b"): {0: {"acc": 0.5}, 1: {"acc": 0.45}, 2: {"acc": 0.3}},
              ("s", "c"): {0: {"acc": 0.9, "bwt": -0.5}, 1: {"acc": 0.9, "bwt": -0.4}, 2: {"acc": 0.7, "bwt": -0.45}}}
    claim = module.Claim("paper", "a beats b", "acc", "a", ("b",))
    assert module.verdict(claim, values, "s")[1] == "holds"  # differences 0.4, 0.35, 0.4
    assert module.verdict(module.Claim("p", "b beats a", "acc", "b", ("a",)), values, "s")[1] == "contradicted"
    assert module.verdict(module.Claim("p", "a beats c", "acc", "a", ("c",)), values, "s")[1] == "inconclusive"
    assert module.verdict(module.Claim("p", "c BWT near 0", "bwt", "c"), values, "s")[1] == "contradicted"
