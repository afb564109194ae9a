"""The classic baselines si, lwf, agem, gem, der, icarl: each one's defining effect against `naive` on
a small real stream, its core computation on hand-worked numbers, its resume, and its refusals."""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from lifelong.config import ExperimentConfig
from lifelong.errors import UserError
from lifelong.evaluation import metrics
from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.models import ModelSpec
from lifelong.orchestrator import play
from lifelong.preflight import check_stream_fits
from lifelong.seeding import derive_seed
from lifelong.strategies.agem import AGEM, project_onto_half_space
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.buffers import BufferTooLargeError
from lifelong.strategies.der import DER
from lifelong.strategies.gem import GEM, MissingSolverError, project_to_cone
from lifelong.strategies.icarl import ICaRL, herding
from lifelong.strategies.lwf import LwF
from lifelong.strategies.naive import Naive
from lifelong.strategies.registry import strategy_class
from lifelong.strategies.si import SI, PathIntegral
from lifelong.strategies.stream_checks import UnsuitableStreamError
from lifelong.streams.builders import build_stream
from lifelong.streams.spec import StreamSpec
from lifelong.training import TrainingSpec
from tests.conftest import blob_stream, context
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

SEEDS = (0, 1, 2)
SPLIT_DIGITS = {"name": "split_digits", "builder": "split", "dataset": "digits", "n_tasks": 5, "classes_per_task": 2}
PERMUTED_DIGITS = {"name": "permuted_digits", "builder": "permuted", "dataset": "digits", "n_tasks": 4}
SPLIT_FMNIST_TASK_IL = {"name": "split_fmnist_til", "builder": "split", "dataset": "fashion_mnist", "n_tasks": 5,
                        "classes_per_task": 2, "scenario": "task-il", "train_per_task": 300, "test_per_task": 300}
TRAINING = {"split_digits": {"epochs": 3, "batch_size": 32, "lr": 0.05},
            "permuted_digits": {"epochs": 3, "batch_size": 32, "lr": 0.05},
            "split_fmnist_til": {"epochs": 3, "batch_size": 16, "lr": 0.1}}
has_fashion = os.path.isdir(os.environ.get("LIFELONG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


@functools.cache
def stream_of(name: str):
    spec = {"split_digits": SPLIT_DIGITS, "permuted_digits": PERMUTED_DIGITS, "split_fmnist_til": SPLIT_FMNIST_TASK_IL}
    return build_stream(TypeAdapter(StreamSpec).validate_python(spec[name]))


def real_context(stream, seed: int) -> StrategyContext:
    return StrategyContext(stream, ModelSpec(hidden=[64]), TrainingSpec(**TRAINING[stream.name]), torch.device("cpu"),
                           seed)


@functools.cache
def results(stream_name: str, strategy: str, params: tuple = ()) -> dict[str, list[float]]:
    """acc and forgetting per seed of a strategy on a small real stream (naive's are shared by the tests)."""
    stream = stream_of(stream_name)
    out = {"acc": [], "forgetting": []}
    for seed in SEEDS:
        learner = {"naive": Naive, "si": SI, "lwf": LwF, "agem": AGEM, "gem": GEM, "der": DER,
                   "icarl": ICaRL}[strategy](dict(params))
        ctx = real_context(stream, seed)
        learner.setup(ctx)
        record = play(learner, ctx, strategy)
        out["acc"].append(metrics.acc(record.scores))
        out["forgetting"].append(metrics.forgetting(record.scores))
    return out


def assert_beats_naive(stream_name: str, strategy: str, metric: str, params: tuple = ()) -> None:
    """Better than naive on every seed, by a mean margin larger than the seed spread (the larger
    sample standard deviation of the two)."""
    ours, naive = results(stream_name, strategy, params)[metric], results(stream_name, "naive")[metric]
    sign = 1 if metric == "acc" else -1
    gains = [sign * (a - b) for a, b in zip(ours, naive)]
    spread = max(np.std(ours, ddof=1), np.std(naive, ddof=1))
    assert min(gains) > 0 and np.mean(gains) > spread, (strategy, metric, ours, naive)


# --------------------------------------------------------------------------- the defining effects

@pytest.mark.parametrize("strategy", ["agem", "gem", "der", "icarl"])
def test_memory_methods_forget_less_than_naive_class_incrementally(strategy):
    # measured (seeds 0-2): naive acc 0.15-0.18, forgetting 0.96-0.98; agem 0.43-0.46 / 0.58-0.64;
    # gem 0.83-0.90 / 0.01-0.07; der 0.29-0.33 / 0.75-0.83; icarl 0.84-0.86 / 0.06-0.07
    assert_beats_naive("split_digits", strategy, "acc")
    assert_beats_naive("split_digits", strategy, "forgetting")


def test_si_forgets_less_than_naive_on_permuted_digits():
    # measured (seeds 0-2): naive forgetting 0.34-0.40, SI 0.19-0.25
    assert_beats_naive("permuted_digits", "si", "forgetting")


@pytest.mark.skipif(not has_fashion, reason="Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)")
def test_lwf_forgets_less_than_naive_on_task_incremental_split_fashion_mnist():
    # the paper's multi-head setting; measured (seeds 0-2): naive forgetting 0.026-0.061, acc 0.94-0.97;
    # LwF forgetting 0.002-0.004, acc 0.98-0.99
    assert_beats_naive("split_fmnist_til", "lwf", "forgetting")
    assert_beats_naive("split_fmnist_til", "lwf", "acc")


# --------------------------------------------------------------------------- core computations, by hand

def test_gem_projection_on_hand_worked_2d_gradients():
    def project(g, G, margin=0.0):
        return project_to_cone(torch.tensor(g), torch.tensor(G), margin, eps=1e-12).tolist()

    # one violated constraint: the closest gradient with g~ . (0, 1) >= 0 is (1, 0)
    assert project([1.0, -1.0], [[0.0, 1.0]]) == pytest.approx([1.0, 0.0], abs=1e-6)
    # g . (1, 1) = -3: v = 3/2, g~ = (-1, -2) + 1.5 (1, 1) = (0.5, -0.5), orthogonal to (1, 1)
    assert project([-1.0, -2.0], [[1.0, 1.0]]) == pytest.approx([0.5, -0.5], abs=1e-6)
    # two constraints, one satisfied: only the violated one moves g
    assert project([1.0, -1.0], [[0.0, 1.0], [1.0, 0.0]]) == pytest.approx([1.0, 0.0], abs=1e-6)
    # both violated: the feasible cone's apex
    assert project([-1.0, -1.0], [[1.0, 0.0], [0.0, 1.0]]) == pytest.approx([0.0, 0.0], abs=1e-6)
    # the margin bounds the dual variable from below: v = max(1, 2) = 2, g~ = (1, -1) + 2 (0, 1)
    assert project([1.0, -1.0], [[0.0, 1.0]], margin=2.0) == pytest.approx([1.0, 1.0], abs=1e-6)


def test_agem_projection_formula_on_hand_worked_numbers():
    grads = [torch.tensor([1.0]), torch.tensor([-1.0, 3.0])]  # g = (1, -1, 3) over two parameter tensors
    reference = [torch.tensor([0.0]), torch.tensor([2.0, 0.0])]  # g_ref = (0, 2, 0): g . g_ref = -2, |g_ref|^2 = 4
    project_onto_half_space(grads, reference)
    assert torch.cat(grads).tolist() == pytest.approx([1.0, 0.0, 3.0])  # g + 2/4 * g_ref
    agreeing = [torch.tensor([1.0]), torch.tensor([1.0, 3.0])]
    project_onto_half_space(agreeing, reference)
    assert torch.cat(agreeing).tolist() == [1.0, 1.0, 3.0]  # g . g_ref = 2 >= 0: unchanged


def test_si_path_integral_on_a_tiny_quadratic():
    # L = 1/2 (1 theta_1^2 + 2 theta_2^2) from theta = (1, 1), two SGD steps of lr 0.1:
    # theta -> (0.9, 0.8) -> (0.81, 0.64); omega = sum_t lr * g_t^2 = (0.1 (1 + 0.81), 0.1 (4 + 2.56))
    theta = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    a = torch.tensor([1.0, 2.0])
    path = PathIntegral([theta])
    for _ in range(2):
        theta.grad = None
        (0.5 * (a * theta ** 2).sum()).backward()
        path.record()
        with torch.no_grad():
            theta -= 0.1 * theta.grad
    path.record()
    assert path.omega[0].tolist() == pytest.approx([0.181, 0.656])
    assert theta.tolist() == pytest.approx([0.81, 0.64])


def test_si_importance_and_penalty_follow_the_paper(monkeypatch):
    stream = blob_stream(n_tasks=2, n_per_class=20)
    si = SI({"c": 0.5, "xi": 0.01})
    si.setup(context(stream, epochs=1))
    start = [p.detach().clone() for p in si.model.parameters()]
    paths = []
    record = PathIntegral.record
    monkeypatch.setattr(PathIntegral, "record", lambda self: paths.append(self) or record(self))
    si.learn(stream.tasks[0])
    omega = paths[0].omega
    for importance, w, p, p0 in zip(si.importance, omega, si.model.parameters(), start):
        torch.testing.assert_close(importance, w / ((p.detach() - p0) ** 2 + 0.01))
    with torch.no_grad():  # the surrogate's value and gradient at a point away from the anchor
        for p in si.model.parameters():
            p.add_(0.1)
    params = list(si.model.parameters())
    expected = 0.5 * sum((om * (p - a) ** 2).sum() for om, p, a in zip(si.importance, params, si.anchor))
    expected_grads = torch.autograd.grad(expected, params)
    for p in params:
        p.grad = torch.zeros_like(p)
    value = si.add_penalty_grad()
    torch.testing.assert_close(value, expected.detach())
    for p, g in zip(params, expected_grads):
        torch.testing.assert_close(p.grad, g)


def test_icarl_herding_picks_exemplars_whose_running_mean_tracks_the_class_mean():
    # points 0, 1, 2, 10 (mean 3.25): 2 first (|2 - 3.25| smallest), then 1 ((2+1)/2 = 1.5 beats
    # (2+0)/2 = 1 and (2+10)/2 = 6), then 10 ((3+10)/3 = 4.33 beats 3/3 = 1), then 0
    features = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    assert herding(features, 4).tolist() == [2, 1, 3, 0]
    assert herding(features, 2).tolist() == [2, 1]


def test_icarl_classifies_by_the_nearest_mean_of_exemplars():
    stream = blob_stream(n_tasks=2)
    icarl = ICaRL({"memory_size": 40})
    icarl.setup(context(stream))
    icarl.learn(stream.tasks[0])
    assert icarl.exemplars["y"].tolist() == [0] * 20 + [1] * 20  # m = 40 // 2 per class
    x = stream.tasks[0].x_test[:5]
    phi, features = icarl._features(x), icarl._features(icarl.exemplars["x"])
    means = torch.nn.functional.normalize(torch.stack([features[:20].mean(0), features[20:].mean(0)]), dim=1)
    scores = icarl.predictor(stream.tasks[0])(x)
    torch.testing.assert_close(scores[:, :2], -torch.cdist(phi, means) ** 2, rtol=1e-4, atol=1e-5)
    assert torch.isinf(scores[:, 2:]).all()  # classes not seen yet are never predicted
    icarl.learn(stream.tasks[1])
    assert np.bincount(icarl.exemplars["y"].numpy()).tolist() == [10] * 4  # reduced to m = 40 // 4


def test_lwf_distils_old_heads_on_recorded_outputs():
    for scenario, heads in (("task-il", [(0, 1), (2, 3)]), ("class-il", [(0, 1, 2, 3)])):
        stream = blob_stream(n_tasks=3, scenario=scenario)
        lwf = LwF()
        lwf.setup(context(stream))
        for task in stream.tasks[:2]:
            lwf.learn(task)
        assert lwf.heads == heads
    task = stream.tasks[2]
    columns = [torch.tensor(heads[0])]
    recorded = lwf._soft_targets(task.x_train[:4], columns)[0]
    expected = torch.softmax(lwf.model(task.x_train[:4])[:, :4] / 2.0, dim=1)
    torch.testing.assert_close(recorded, expected)


def test_der_buffer_is_the_reservoir_of_every_minibatch_in_training_order():
    stream = blob_stream(n_tasks=2, n_per_class=30)  # 60 examples a task, batches of 16
    der = DER({"buffer_size": 50})
    ctx = context(stream, epochs=2)
    der.setup(ctx)
    slots, seen = {}, 0
    for task in stream.tasks:
        der.learn(task)
        rng = np.random.default_rng(derive_seed(0, "buffer", task.id))  # Algorithm R, one arrival at a time
        shuffle = ctx.shuffle_generator(task)
        for _ in range(2):
            for example in torch.randperm(60, generator=shuffle).tolist():
                slot = seen if seen < 50 else int(rng.integers(0, seen + 1))
                if slot < 50:
                    slots[slot] = (task.id, example)
                seen += 1
        assert der.buffer.seen == seen
        expected = torch.stack([stream.tasks[t].x_train[e] for t, e in (slots[i] for i in range(50))])
        assert torch.equal(der.buffer["x"], expected)


def test_der_stores_the_logits_each_example_had_when_it_was_trained_on():
    stream = blob_stream(n_tasks=2, n_per_class=30)
    der = DER({"buffer_size": 120})  # room for every example: arrival i stays in slot i
    ctx = context(stream, epochs=1)
    der.setup(ctx)
    initial = copy.deepcopy(der.model)
    der.learn(stream.tasks[0])
    order = torch.randperm(60, generator=ctx.shuffle_generator(stream.tasks[0]))  # the task's arrival order
    with torch.no_grad():
        untrained = initial(stream.tasks[0].x_train[order])
    stored = der.buffer["logits"]
    torch.testing.assert_close(stored[:16], untrained[:16])  # the first step's outputs, before its update
    assert not torch.allclose(stored[16:32], untrained[16:32])  # the second step's: after one update


# --------------------------------------------------------------------------- resume

CLASSIC = {"si": (SI, {}), "lwf": (LwF, {}), "agem": (AGEM, {"buffer_size": 60}), "gem": (GEM, {"memory_per_task": 30}),
           "der": (DER, {"buffer_size": 60}), "icarl": (ICaRL, {"memory_size": 60})}


@pytest.mark.parametrize("name", list(CLASSIC))
@pytest.mark.parametrize("scenario", ["class-il", "task-il"])
def test_state_round_trip_through_a_checkpoint_resumes_byte_exactly(name, scenario):
    if name == "icarl" and scenario == "task-il":
        pytest.skip("icarl refuses task-incremental streams (tested below)")
    cls, params = CLASSIC[name]
    stream = blob_stream(n_tasks=3, n_per_class=30, scenario=scenario)
    learner = cls(params)
    learner.setup(context(stream))
    for task in stream.tasks[:2]:
        learner.learn(task)
    saved = io.BytesIO()
    torch.save(learner.state_dict(), saved)
    learner.learn(stream.tasks[2])
    resumed = cls(params)
    resumed.setup(context(stream))
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=True))  # as `lifelong resume` loads checkpoints
    resumed.learn(stream.tasks[2])
    for a, b in zip(learner.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    x = stream.tasks[0].x_test
    assert torch.equal(learner.predictor(stream.tasks[0])(x), resumed.predictor(stream.tasks[0])(x))


# --------------------------------------------------------------------------- refusals before training

def config_with(strategy: str, stream: dict, params: dict | None = None) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"name": "refusal", "stream": stream, "references": {"enabled": False},
                                            "strategies": [{"name": strategy, "label": strategy.split(":")[1].lower(),
                                                            "params": params or {}}]})


def test_icarl_refuses_a_task_incremental_stream_naming_itself_the_scenario_and_the_fix():
    stream = blob_stream(scenario="task-il")
    with pytest.raises(UnsuitableStreamError, match=r"icarl .* class-il streams only; stream 'blobs' is task-il\. "
                                                    r"Use a split stream with scenario: class-il"):
        ICaRL().setup(context(stream))
    few_shot = StrategyContext(blob_stream(), ModelSpec(hidden=[8]), TrainingSpec(), torch.device("cpu"), 0,
                               EvaluationSpec(mode="few-shot"))
    with pytest.raises(UnsuitableStreamError, match="icarl .* set evaluation.mode: standard"):
        ICaRL().setup(few_shot)
    config = config_with("lifelong.strategies.icarl:ICaRL", {**SPLIT_DIGITS, "scenario": "task-il"})
    with pytest.raises(UserError, match=r"strategy 'icarl' \(strategies\.0\): icarl .* is task-il"):
        check_stream_fits(config, build_stream(config.stream))  # what `lifelong validate` and `run` call first


@pytest.mark.parametrize("name", ["icarl", "lwf"])
def test_classification_only_methods_refuse_a_regression_stream(name):
    reference = f"lifelong.strategies.{name}:{CLASSIC[name][0].__name__}"
    config = config_with(reference, {"name": "sine", "builder": "sinusoid", "n_tasks": 3})
    with pytest.raises(UserError, match=rf"{name} .*needs a classification stream; stream 'sine' .* is regression\. "
                                        r"Give `stream:` a classification stream"):
        check_stream_fits(config, build_stream(config.stream))


@pytest.mark.parametrize("name,field", [("der", "buffer_size"), ("agem", "buffer_size"), ("icarl", "memory_size"),
                                        ("gem", "memory_per_task")])
def test_a_memory_larger_than_the_data_is_refused_naming_the_field_and_the_limit(name, field):
    stream = blob_stream(n_tasks=3, n_per_class=10)  # 20 examples a task, 60 in all
    limit = 20 if name == "gem" else 60
    with pytest.raises(BufferTooLargeError, match=rf"{name}: params\.{field}=61 .* at most {limit}"):
        CLASSIC[name][0]({field: 61}).setup(context(stream))
    CLASSIC[name][0]({field: limit}).setup(context(stream))  # the limit itself is fine


def test_gem_without_its_solver_names_the_pip_command(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_quadprog(name, *args, **kwargs):
        if name == "quadprog":
            raise ImportError("No module named 'quadprog'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_quadprog)
    with pytest.raises(MissingSolverError, match=r"gem .* quadprog .* pip install 'lifelong\[gem\]'"):
        GEM().setup(context(blob_stream()))


def test_classic_strategies_validate_their_params():
    for cls, bad in ((SI, {"xi": 0}), (LwF, {"temperature": -1}), (AGEM, {"buffer_size": 0}),
                     (GEM, {"margin": -0.1}), (DER, {"alpha": -1}), (ICaRL, {"memory_sze": 10})):
        with pytest.raises(ValueError):
            cls(bad)
    assert strategy_class("lifelong.strategies.der:DER") is DER


def test_pyproject_registers_every_classic_strategy_under_its_name():
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    registered = project["entry-points"]["lifelong.strategies"]
    for name, (cls, _) in CLASSIC.items():
        assert strategy_class(registered[name]) is cls
    assert any(dep.startswith("quadprog") for dep in project["optional-dependencies"]["gem"])


# --------------------------------------------------------------------------- the command line

def cli(*args, cwd):
    return subprocess.run([sys.executable, "-P", "-m", "lifelong.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_every_classic_strategy_runs_resumably_from_the_command_line_and_validate_refuses_icarl(tmp_path):
    strategies = "".join(f"  - {{name: 'lifelong.strategies.{name}:{cls.__name__}', label: {name}}}\n"
                         for name, (cls, _) in CLASSIC.items())
    (tmp_path / "classic.yaml").write_text(
        "name: classic\nstream: {name: tiny, builder: split, dataset: digits, n_tasks: 3, train_per_task: 100}\n"
        "training: {epochs: 1}\nreferences: {enabled: false}\nstrategies:\n"
        + strategies.replace("label: gem}", "label: gem, params: {memory_per_task: 50}}"))
    done = cli("run", tmp_path / "classic.yaml", "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    per_seed = json.loads((tmp_path / "run/metrics.json").read_text())["per_seed"]
    assert set(per_seed) == set(CLASSIC) and all(0 <= m["0"]["acc"] <= 1 for m in per_seed.values())
    assert {p.name for p in (tmp_path / "run/checkpoints").glob("*-seed0.pt")} == {f"{n}-seed0.pt" for n in CLASSIC}
    refused = cli("validate", tmp_path / "classic.yaml", "stream.scenario=task-il", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "strategy 'icarl' (strategies.5): icarl" in refused.stderr and "is task-il" in refused.stderr


# --------------------------------------------------------------------------- the speed table's bare loops

def test_the_bare_loops_of_the_speed_table_do_exactly_the_engines_algorithms():
    """benchmarks/bare_classic.py (plain PyTorch) ends with the engine's very weights: same algorithm, same defaults."""
    bare = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks/bare_classic.py"))["BARE"]
    stream = blob_stream(n_tasks=3, n_per_class=20)
    tasks = [(t.x_train, t.y_train, t.x_test, t.y_test) for t in stream.tasks]
    sizes = {"gem": {"memory_per_task": 30}, "agem": {"buffer_size": 100}, "der": {"buffer_size": 100},
             "icarl": {"memory_size": 100}}
    for name, (cls, _) in CLASSIC.items():
        engine = cls(sizes.get(name, {}))
        engine.setup(context(stream, epochs=1))
        model = copy.deepcopy(engine.model)
        for task in stream.tasks:
            engine.learn(task)
        bare[name](tasks, model, 0.1, 16, 0, **sizes.get(name, {}))
        for a, b in zip(engine.model.parameters(), model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
