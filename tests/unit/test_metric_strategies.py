"""Metric- and generation-based meta-learners (protomem, matching, hypernet) on tiny Gaussian blobs."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from pydantic import ValidationError

from lifelong.evaluation.evaluator import evaluate_stream
from lifelong.evaluation.fewshot import EvaluationSpec, support_set
from lifelong.models import ModelSpec
from lifelong.orchestrator import play
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.episodes import ExemplarMemory, class_means, embed
from lifelong.strategies.hypernet import HyperNet
from lifelong.strategies.matching import MatchingNetworks
from lifelong.strategies.protomem import PrototypeMemory
from lifelong.strategies.registry import strategy_class
from lifelong.streams.task import Stream, Task
from lifelong.training import TrainingSpec

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add overhead, and much more on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blob_stream(groups: list[tuple[int, ...]], *, dim: int = 16, n: int = 40, spread: float = 4.0,
                informative: int | None = None, noise: float = 1.0, seed: int = 0,
                scenario: str = "class-il") -> Stream:
    """One task per class group; class c is a Gaussian blob around a random mean.

    With `informative`, the means differ only in the first `informative` dimensions and the others
    carry noise of scale `noise`: an embedding that learns to ignore them does better.
    """
    g = torch.Generator().manual_seed(seed)
    n_classes = max(max(group) for group in groups) + 1
    means = torch.randn(n_classes, dim, generator=g) * spread
    scale = torch.ones(dim)
    if informative is not None:
        means[:, informative:] = 0
        scale[informative:] = noise

    def draw(classes):
        y = torch.tensor(classes).repeat_interleave(n)
        return means[y] + torch.randn(len(y), dim, generator=g) * scale, y

    tasks = tuple(Task(i, f"T{i + 1}", "classification", *draw(group), *draw(group), classes=tuple(group),
                       label=i if scenario == "task-il" else None) for i, group in enumerate(groups))
    return Stream("blobs", scenario, tasks, (dim,), n_classes, seed)


def split_blobs(n_tasks: int = 4, per_task: int = 2, **kw) -> Stream:
    return blob_stream([tuple(range(i * per_task, (i + 1) * per_task)) for i in range(n_tasks)], **kw)


def few_shot_blobs() -> Stream:
    """8 tasks of 5 new classes each; only 4 of 32 dimensions tell classes apart."""
    return split_blobs(8, 5, dim=32, spread=2.0, informative=4, noise=3.0)


def make(cls, stream: Stream, params: dict | None = None, hidden=(64,), evaluation=None, seed: int = 0):
    strategy = cls(params or {})
    ctx = StrategyContext(stream, ModelSpec(hidden=list(hidden)), TrainingSpec(), CPU, seed,
                          evaluation or EvaluationSpec())
    strategy.setup(ctx)
    return strategy, ctx


def accuracies(strategy, stream: Stream) -> torch.Tensor:
    return torch.tensor(evaluate_stream(strategy, stream.tasks, stream.n_outputs)[:, 0])


def snapshot(state):
    return copy.deepcopy(state)


def assert_same_state(a, b, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# --------------------------------------------------------------------------- protomem

def test_protomem_learns_class_incrementally_without_gradient_steps():
    stream = split_blobs(4, 2)
    strategy, _ = make(PrototypeMemory, stream)  # meta_train false: a random embedding
    embedding_before = snapshot(strategy.net.state_dict())
    rows = [accuracies(strategy, stream)]
    for task in stream.tasks:
        stats = strategy.learn(task)
        assert "episode_loss" not in stats
        rows.append(accuracies(strategy, stream))
    scores = torch.stack(rows)
    assert_same_state(embedding_before, strategy.net.state_dict(), "embedding")
    assert scores[-1].mean() >= 0.95  # all 8 classes compete, no task label
    for j in range(len(stream.tasks)):
        assert scores[j + 1, j] >= 0.95
        assert torch.all(scores[j + 2:, j] >= scores[j + 1, j])  # adding classes costs old ones nothing
    for j in range(1, len(stream.tasks)):
        assert scores[j, j] == 0  # an unseen class has no prototype: logit -inf


def test_protomem_old_prototypes_untouched_by_new_classes():
    stream = split_blobs(3, 2)
    strategy, _ = make(PrototypeMemory, stream)
    strategy.learn(stream.tasks[0])
    first = strategy.prototypes.vectors.clone()
    z = embed(strategy.net["embed"], stream.tasks[0].x_train)
    means, _ = class_means(z, stream.tasks[0].y_train, stream.n_outputs)
    torch.testing.assert_close(first, means[[0, 1]])
    strategy.learn(stream.tasks[1])
    strategy.learn(stream.tasks[2])
    assert torch.equal(strategy.prototypes.vectors[:2], first)
    assert strategy.prototypes.classes.tolist() == [0, 1, 2, 3, 4, 5]


def test_protomem_logits_are_minus_squared_distance_and_minus_inf_without_prototype():
    stream = split_blobs(2, 2)
    strategy, _ = make(PrototypeMemory, stream)
    task = stream.tasks[0]
    assert torch.equal(strategy.predictor(task)(task.x_test), torch.zeros(len(task.x_test), 4))  # empty memory
    strategy.learn(task)
    logits = strategy.predictor(task)(task.x_test[:5])
    z = strategy.net["embed"](task.x_test[:5])
    expected = -((z[:, None, :] - strategy.prototypes.vectors[None]) ** 2).sum(-1)
    torch.testing.assert_close(logits[:, :2], expected, rtol=1e-4, atol=1e-3)
    assert torch.isinf(logits[:, 2:]).all() and (logits[:, 2:] < 0).all()


@pytest.mark.parametrize("policy", ["merge", "evict_oldest"])
def test_protomem_memory_bound_on_new_classes(policy):
    stream = split_blobs(4, 2)
    strategy, _ = make(PrototypeMemory, stream, {"memory_size": 5, "when_full": policy})
    for task in stream.tasks:
        assert strategy.learn(task)["prototypes"] <= 5
    # all classes distinct: nothing to merge, so both policies drop the oldest prototypes
    assert strategy.prototypes.classes.tolist() == [3, 4, 5, 6, 7]
    assert accuracies(strategy, stream)[0] < 0.5  # class 0, 1, 2 forgotten


def test_protomem_merge_keeps_every_class_with_count_weighted_means():
    # the same two classes in three tasks (domain-incremental): one prototype per (class, task)
    stream = blob_stream([(0, 1), (0, 1), (0, 1)], scenario="domain-il")
    strategy, _ = make(PrototypeMemory, stream, {"memory_size": 2})
    for task in stream.tasks:
        strategy.learn(task)
    assert sorted(strategy.prototypes.classes.tolist()) == [0, 1]
    x = torch.cat([t.x_train for t in stream.tasks])
    y = torch.cat([t.y_train for t in stream.tasks])
    means, counts = class_means(embed(strategy.net["embed"], x), y, 2)
    order = strategy.prototypes.classes.argsort()
    torch.testing.assert_close(strategy.prototypes.vectors[order], means, rtol=1e-5, atol=1e-5)
    assert strategy.prototypes.counts[order].tolist() == counts.tolist()

    unbounded, _ = make(PrototypeMemory, stream, {"memory_size": 100})
    for task in stream.tasks:
        unbounded.learn(task)
    assert len(unbounded.prototypes) == 6


def test_protomem_prototype_shots_uses_that_many_examples():
    stream = split_blobs(1, 2)
    strategy, _ = make(PrototypeMemory, stream, {"prototype_shots": 3})
    strategy.learn(stream.tasks[0])
    assert strategy.prototypes.counts.tolist() == [3.0, 3.0]


def test_protomem_drift_compensation_tracks_the_moving_embedding():
    stream = split_blobs(2, 2, spread=0.5)  # overlapping blobs: the loss stays positive, the embedding moves
    params = {"meta_train": True, "episodes": 20, "exemplars": 10_000}  # exemplars hold all of task 1
    compensated, _ = make(PrototypeMemory, stream, params)
    frozen, _ = make(PrototypeMemory, stream, {**params, "drift": "freeze"})
    stats = {}
    for name, strategy in (("compensated", compensated), ("frozen", frozen)):
        strategy.learn(stream.tasks[0])
        stats[name] = strategy.learn(stream.tasks[1])
        assert stats[name]["episode_loss"] > 0
    # with every example of classes 0, 1 stored, compensation equals recomputing their means
    z = embed(compensated.net["embed"], stream.tasks[0].x_train)
    now, _ = class_means(z, stream.tasks[0].y_train, stream.n_outputs)
    torch.testing.assert_close(compensated.prototypes.vectors[:2], now[:2], rtol=1e-4, atol=1e-4)
    assert stats["compensated"]["drift"] > 0
    assert "drift" not in stats["frozen"] and len(frozen.exemplars) == 0
    z_frozen = embed(frozen.net["embed"], stream.tasks[0].x_train)
    stale, _ = class_means(z_frozen, stream.tasks[0].y_train, stream.n_outputs)
    assert (frozen.prototypes.vectors[:2] - stale[:2]).norm() > 1e-3  # frozen prototypes drifted away


def test_protomem_few_shot_curve_is_flat_and_from_the_support_set():
    stream = few_shot_blobs()
    strategy, ctx = make(PrototypeMemory, stream)
    task = stream.tasks[5]
    support = support_set(task, 5, 0)
    curve = strategy.adaptation_curve(task, support, steps=3)
    assert curve.shape == (4, 2)
    assert torch.equal(curve, curve[:1].expand(4, 2))
    assert curve[0, 0] > 0.2  # beats chance (1/5) without any training
    assert len(strategy.prototypes) == 0  # evaluation stores nothing


# --------------------------------------------------------------------------- all three

STRATEGIES = [
    (PrototypeMemory, {"meta_train": True, "episodes": 10}),
    (MatchingNetworks, {"episodes": 10}),
    (HyperNet, {"episodes": 10}),
]


@pytest.mark.parametrize("cls, params", STRATEGIES)
def test_evaluation_leaves_the_state_unchanged(cls, params):
    stream = split_blobs(3, 2)
    strategy, _ = make(cls, stream, params)
    strategy.learn(stream.tasks[0])
    strategy.learn(stream.tasks[1])
    before = snapshot(strategy.state_dict())
    evaluate_stream(strategy, stream.tasks, stream.n_outputs)
    supports = [support_set(task, 5, 0) for task in stream.tasks]
    strategy.adaptation_curves(list(stream.tasks), supports, 3)
    assert_same_state(before, strategy.state_dict())


@pytest.mark.parametrize("cls, params", STRATEGIES)
def test_class_incremental_from_memory(cls, params):
    stream = split_blobs(3, 2)
    strategy, _ = make(cls, stream, params)
    for task in stream.tasks:
        strategy.learn(task)
    assert accuracies(strategy, stream).mean() >= 0.9


@pytest.mark.parametrize("cls", [MatchingNetworks, HyperNet])
def test_few_shot_beats_chance_after_episodes(cls):
    stream = few_shot_blobs()
    strategy, _ = make(cls, stream, {"episodes": 30})
    unseen = stream.tasks[6:]
    supports = [support_set(task, 5, 0) for task in unseen]
    before = torch.stack(strategy.adaptation_curves(list(unseen), supports, 2))[:, 0, 0].mean()
    losses = [strategy.learn(task)["episode_loss"] for task in stream.tasks[:6]]
    curves = torch.stack(strategy.adaptation_curves(list(unseen), supports, 2))
    assert torch.equal(curves, curves[:, :1].expand_as(curves))  # no steps at test time
    after = curves[:, 0, 0].mean()
    assert after > 0.4 and after > before + 0.1  # chance is 0.2 on these unseen 5-way tasks
    assert losses[-1] < losses[0]


def test_play_runs_few_shot_and_standard_modes():
    stream = split_blobs(3, 2)
    for mode in ("standard", "few-shot"):
        spec = EvaluationSpec(mode=mode, shots=5, steps=2)
        strategy, ctx = make(HyperNet, stream, {"episodes": 5}, evaluation=spec)
        record = play(strategy, ctx, "hypernet")
        assert record.completed == 3
        assert (record.scores[-1] > 0.9).all()
        if mode == "few-shot":
            assert (record.curves[:, :, 0] == record.curves[:, :, -1]).all()


def test_state_dict_round_trip_and_determinism():
    stream = split_blobs(2, 2)
    a, _ = make(PrototypeMemory, stream, {"meta_train": True, "episodes": 5})
    b, _ = make(PrototypeMemory, stream, {"meta_train": True, "episodes": 5})
    for task in stream.tasks:
        a.learn(task)
        b.learn(task)
    assert_same_state(a.state_dict(), b.state_dict())
    fresh, _ = make(PrototypeMemory, stream, {"meta_train": True, "episodes": 5})
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)  # checkpoints load with weights_only=True
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    x = stream.tasks[0].x_test
    assert torch.equal(fresh.predictor(stream.tasks[0])(x), a.predictor(stream.tasks[0])(x))


def test_registered_by_name():
    assert strategy_class("protomem") is PrototypeMemory
    assert strategy_class("matching") is MatchingNetworks
    assert strategy_class("hypernet") is HyperNet


# --------------------------------------------------------------------------- shared pieces

def test_exemplar_memory_is_bounded_and_class_balanced():
    memory = ExemplarMemory(10, (2,), CPU)
    draw = torch.Generator().manual_seed(0)
    memory.add(torch.randn(40, 2), torch.tensor([0, 1]).repeat(20), draw)
    assert len(memory) == 10 and torch.bincount(memory.y).tolist() == [5, 5]
    memory.add(torch.randn(60, 2), torch.tensor([2, 3, 4]).repeat(20), draw)
    assert len(memory) == 10 and torch.bincount(memory.y).tolist() == [2, 2, 2, 2, 2]


# --------------------------------------------------------------------------- bad params

@pytest.mark.parametrize("cls, params, message", [
    (MatchingNetworks, {"ways": 3}, "ways = 3"),
    (HyperNet, {"shots": 30, "queries": 15}, r"shots \+ params.queries = 45"),
    (PrototypeMemory, {"meta_train": True, "ways": 5}, "ways = 5"),
    (PrototypeMemory, {"prototype_shots": 100}, "prototype_shots=100"),
])
def test_bad_params_fail_at_setup_naming_the_parameter(cls, params, message):
    stream = split_blobs(2, 2, n=40)
    with pytest.raises(ValueError, match=message):
        make(cls, stream, params)


def test_bad_params_rejected_by_the_schema():
    for params in ({"ways": 1}, {"episodes": -1}, {"shots": 0}, {"memory_size": 0}, {"when_full": "random"},
                   {"unknown": 1}):
        with pytest.raises(ValidationError):
            PrototypeMemory(params)


def test_meta_training_needs_parameters_and_classification():
    stream = split_blobs(2, 2)
    with pytest.raises(ValueError, match="no parameters to meta-train"):
        make(PrototypeMemory, stream, {"meta_train": True}, hidden=())
    raw, _ = make(PrototypeMemory, stream, hidden=())  # raw-input nearest class mean is fine
    raw.learn(stream.tasks[0])
    assert accuracies(raw, stream)[0] >= 0.95
    regression = Stream("sin", "domain-il", (Task(0, "T1", "regression", torch.randn(4, 1), torch.randn(4, 1),
                                                  torch.randn(4, 1), torch.randn(4, 1)),), (1,), 1, 0)
    with pytest.raises(ValueError, match="classifies"):
        make(MatchingNetworks, regression)
