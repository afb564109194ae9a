"""Gradient-based meta-learners: evaluation leaves them unchanged, vmapped == looped, and they learn."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from lifelong import adapt
from lifelong.evaluation.evaluator import evaluate_stream_few_shot
from lifelong.evaluation.fewshot import EvaluationSpec, HeldOutEpisodes, support_set
from lifelong.models import ModelSpec
from lifelong.strategies.anil import head_keys
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.registry import strategy_class
from lifelong.streams.builders import build_stream
from lifelong.streams.episodic import episode_sampler
from lifelong.streams.spec import StreamSpec
from lifelong.training import NonFiniteLossError, TrainingSpec
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

META = ("maml", "fomaml", "reptile", "anil", "metasgd")
SHOTS, STEPS = 5, 3


def stream_of(**fields):
    return build_stream(TypeAdapter(StreamSpec).validate_python(fields))


@pytest.fixture(scope="module")
def sinusoids():
    return stream_of(name="sin", builder="sinusoid_family", n_tasks=2, amplitude_shift=1.0, functions_per_task=200,
                     points_per_function=20, test_functions=16, test_points_per_function=30)


@pytest.fixture(scope="module")
def digits():
    return stream_of(name="digits", builder="nway", dataset="digits", n_tasks=2, ways=3, train_per_class=20,
                     test_per_class=10, eval_episodes=4)


def make(name: str, stream, *, hidden=(40, 40), steps=STEPS, device="cpu", **params):
    """A set-up strategy; `params` override small defaults (3 meta-steps of 4 episodes of 5 shots)."""
    ctx = StrategyContext(stream, ModelSpec(hidden=list(hidden)), TrainingSpec(), torch.device(device), seed=0,
                          evaluation=EvaluationSpec(mode="few-shot", shots=SHOTS, steps=steps))
    strategy = strategy_class(name)({"meta_steps": 3, "meta_batch": 4, "shots": 5, **params})
    strategy.setup(ctx)
    return strategy


def episodes_of(stream, shots=SHOTS):
    """All held-out episodes of the stream with their support sets, flattened."""
    tasks, supports = [], []
    for task in stream.tasks:
        held_out = support_set(task, shots, seed=0)
        tasks += held_out.tasks
        supports += held_out.supports
    return tasks, supports


def assert_same_state(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", META)
def test_few_shot_evaluation_leaves_the_learner_unchanged(name, sinusoids):
    strategy = make(name, sinusoids)
    strategy.learn(sinusoids.tasks[0])
    before = copy.deepcopy(strategy.state_dict())
    supports = [support_set(task, SHOTS, seed=0) for task in sinusoids.tasks]
    curves = evaluate_stream_few_shot(strategy, sinusoids.tasks, supports, STEPS)
    episode = supports[0].tasks[0]
    strategy.predictor(episode, (episode.x_train, episode.y_train))(episode.x_test)
    assert curves.shape == (2, STEPS + 1, 2)
    assert_same_state(strategy.state_dict(), before)


@pytest.mark.parametrize("name", ("maml", "anil", "metasgd", "reptile"))
@pytest.mark.parametrize("stream_name", ("sinusoids", "digits"))
def test_vmapped_curves_equal_looped_curves(name, stream_name, request):
    stream = request.getfixturevalue(stream_name)
    shots = 2 if stream_name == "digits" else SHOTS
    strategy = make(name, stream, shots=shots, **({} if name == "reptile" else {"queries": 3}))
    strategy.learn(stream.tasks[0])
    tasks, supports = episodes_of(stream, shots)
    tasks.append(tasks[0])  # once more, with a one-example support: a shape of its own, adapted alone
    supports.append((supports[0][0][:1], supports[0][1][:1]))
    vmapped = torch.stack(strategy.adaptation_curves(tasks, supports, STEPS))
    looped = torch.stack([strategy.adaptation_curve(t, s, STEPS) for t, s in zip(tasks, supports)])
    torch.testing.assert_close(vmapped, looped, atol=1e-5, rtol=1e-5)


def post_adaptation_mse(strategy, stream) -> float:
    supports = [support_set(stream.tasks[0], 10, seed=0)]
    return -float(evaluate_stream_few_shot(strategy, stream.tasks[:1], supports, steps=1)[0, -1, 0])


def test_maml_meta_training_lowers_the_mse_after_adaptation(sinusoids):
    maml = make("maml", sinusoids, shots=10, meta_steps=100, meta_batch=10, meta_lr=0.01)
    before = post_adaptation_mse(maml, sinusoids)
    stats = maml.learn(sinusoids.tasks[0])
    after = post_adaptation_mse(maml, sinusoids)
    assert stats["meta_loss"] < before
    assert after < 0.6 * before, (before, after)


def test_anil_adapts_the_head_only_and_meta_trains_the_body(sinusoids):
    anil = make("anil", sinusoids)
    assert anil.adapt_keys() == ["5.weight", "5.bias"] == head_keys(anil.model)
    body_before = {k: v.clone() for k, v in anil.model.named_parameters() if k not in anil.adapt_keys()}
    anil.learn(sinusoids.tasks[0])
    episode = support_set(sinusoids.tasks[0], SHOTS, seed=0).tasks[0]
    adapted = anil.adapted_params(episode, (episode.x_train, episode.y_train), steps=2)
    for name, p in anil.model.named_parameters():
        assert torch.equal(adapted[name], p) == (name not in anil.adapt_keys()), name
    assert any(not torch.equal(p, body_before[k]) for k, p in anil.model.named_parameters() if k in body_before)


def test_metasgd_step_sizes_receive_gradient_and_change(sinusoids):
    metasgd = make("metasgd", sinusoids, inner_lr=0.01, meta_lr=0.01)
    metasgd.learn(sinusoids.tasks[0])
    for name, lr in metasgd.lrs.items():
        assert lr.grad is not None and bool(lr.grad.abs().sum() > 0), name
        assert not torch.allclose(lr, torch.full_like(lr, 0.01)), name
    restored = make("metasgd", sinusoids)
    restored.load_state_dict(copy.deepcopy(metasgd.state_dict()))
    assert_same_state(restored.state_dict(), metasgd.state_dict())
    assert restored.optimizer.param_groups[1]["params"][0] is restored.lrs["1.weight"]


def test_reptile_with_outer_step_one_lands_on_the_mean_adapted_parameters(sinusoids):
    reptile = make("reptile", sinusoids, outer_step=1.0, inner_steps=3)
    episodes = episode_sampler(sinusoids.tasks[0], SHOTS, 0, "test")(4, torch.Generator().manual_seed(0))
    loss_fn = torch.nn.functional.mse_loss
    expected = adapt.adapt_many(reptile.model, adapt.params_of(reptile.model, detach=True), *episodes[:2],
                                loss_fn=loss_fn, steps=3, lr=reptile.params.inner_lr, first_order=True)
    reptile.meta_step(episodes, loss_fn)
    for name, p in reptile.model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name].mean(0))


@pytest.mark.parametrize("name", ["maml", "reptile"])
def test_bfloat16_autocast_meta_trains_close_to_float32_and_keeps_float32_state(name, sinusoids):
    episodes = episode_sampler(sinusoids.tasks[0], SHOTS, SHOTS, "test")(4, torch.Generator().manual_seed(0))
    loss_fn = torch.nn.functional.mse_loss
    full, mixed = make(name, sinusoids), make(name, sinusoids, amp="bfloat16")
    assert_same_state(full.model.state_dict(), mixed.model.state_dict())
    losses = {"full": full.meta_step(episodes, loss_fn).detach(), "mixed": mixed.meta_step(episodes, loss_fn).detach()}

    assert losses["mixed"].dtype == torch.float32 and float(losses["mixed"]) != float(losses["full"])
    torch.testing.assert_close(losses["mixed"], losses["full"], rtol=0.05, atol=0)  # bfloat16: ~3 digits
    for (key, p), q in zip(full.model.named_parameters(), mixed.model.parameters()):
        assert q.dtype == q.grad.dtype == torch.float32, key
        assert not torch.equal(p.grad, q.grad), key  # the meta-gradient was computed in bfloat16...
        torch.testing.assert_close(q.grad, p.grad, rtol=0.1, atol=0.05 * float(p.grad.abs().max()), msg=key)
    supports = [support_set(sinusoids.tasks[0], SHOTS, seed=0)]
    curves = {k: evaluate_stream_few_shot(s, sinusoids.tasks[:1], supports, STEPS) for k, s in
              (("full", full), ("mixed", mixed))}
    np.testing.assert_allclose(curves["mixed"], curves["full"], rtol=0.05)


@pytest.mark.parametrize("field,value", [("shots", 0), ("steps", -1), ("shots", 10_001)])
def test_evaluation_k_and_n_out_of_range_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        EvaluationSpec(mode="few-shot", **{field: value})


def test_k_larger_than_the_support_pool_names_the_setting(sinusoids, digits):
    with pytest.raises(ValueError, match="evaluation.shots=30 leaves no query point"):
        support_set(sinusoids.tasks[0], 30, seed=0)
    with pytest.raises(ValueError, match="fewer than evaluation.shots=21"):
        support_set(digits.tasks[0], 21, seed=0)
    with pytest.raises(ValueError, match="MAML: params.shots \\+ params.queries = 25 .* lower them"):
        make("maml", sinusoids, shots=15)  # 15 + 10 queries > 20 points per function
    with pytest.raises(ValueError, match="MAML: task .* has 20 training examples of class 0, fewer than params.shots"):
        make("maml", digits, queries=16)


def test_non_finite_inner_loss_names_the_step_sizes(sinusoids):
    maml = make("maml", sinusoids, inner_lr=10.0, meta_lr=10.0, inner_steps=5)
    with pytest.raises(NonFiniteLossError, match="params.inner_lr \\(now 10.0\\) or params.meta_lr"):
        maml.learn(sinusoids.tasks[0])
    assert adapt.NonFiniteLossError is NonFiniteLossError  # the CLI catches both as one


def test_batchnorm_with_running_statistics_is_refused(sinusoids, monkeypatch):
    bn_model = nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    monkeypatch.setattr(StrategyContext, "new_model", lambda self, index=0: bn_model)
    with pytest.raises(ValueError, match="track_running_stats"):
        make("maml", sinusoids)


def test_nway_episodes_meta_train_a_classifier(digits):
    maml = make("maml", digits, hidden=(32,), shots=2, inner_lr=0.3, meta_steps=20, meta_batch=4, queries=3)
    stats = maml.learn(digits.tasks[0])
    supports = [support_set(task, 2, seed=0) for task in digits.tasks]
    assert all(isinstance(s, HeldOutEpisodes) for s in supports)
    curves = evaluate_stream_few_shot(maml, digits.tasks, supports, STEPS)
    assert curves.shape == (2, STEPS + 1, 2) and stats["meta_loss"] > 0
    assert ((curves[..., 0] >= 0) & (curves[..., 0] <= 1)).all()


def test_diverging_few_shot_adaptation_names_the_step_size(sinusoids):
    maml = make("maml", sinusoids, inner_lr=10.0)
    supports = [support_set(task, SHOTS, seed=0) for task in sinusoids.tasks]
    with pytest.raises(NonFiniteLossError, match="evaluation.steps=20; lower the adaptation step size"):
        evaluate_stream_few_shot(maml, sinusoids.tasks, supports, steps=20)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,amp", [*((name, "off") for name in META), ("maml", "bfloat16")])
def test_meta_learning_and_evaluation_run_on_the_device(name, amp, sinusoids):
    cuda = torch.device("cuda")
    stream = dataclasses.replace(sinusoids, tasks=tuple(task.to(cuda) for task in sinusoids.tasks))
    strategy = make(name, stream, device="cuda", amp=amp)
    stats = strategy.learn(stream.tasks[0])
    supports = [support_set(task, SHOTS, seed=0) for task in stream.tasks]
    curves = evaluate_stream_few_shot(strategy, stream.tasks, supports, STEPS)
    assert all(p.is_cuda for p in strategy.model.parameters())
    assert np.isfinite(stats["meta_loss"]) and np.isfinite(curves).all()
