"""Continual-learning baselines: what each one does to the record, checked on tiny blob streams."""

import copy
import dataclasses
import sys

import numpy as np
import pytest
import torch

from lifelong.evaluation import metrics
from lifelong.orchestrator import play
from lifelong.seeding import derive_seed
from lifelong.strategies.ewc import EWC
from lifelong.strategies.independent import Independent
from lifelong.strategies.joint import Joint
from lifelong.strategies.naive import Naive
from lifelong.strategies.registry import UnknownStrategyError, available, strategy_class
from lifelong.strategies.replay import Replay
from lifelong.training import NonFiniteLossError, fit, task_loss
from tests.conftest import blob_stream, context, linear_domain_stream


def run(strategy, stream, seed=0, **training):
    ctx = context(stream, seed, **training)
    strategy.setup(ctx)
    return play(strategy, ctx, type(strategy).__name__.lower())


def test_naive_forgets_class_incrementally_and_replay_remembers(blobs):
    naive, replay = run(Naive(), blobs), run(Replay({"buffer_size": 60}), blobs)
    assert metrics.learning_acc(naive.scores) > 0.95
    assert metrics.forgetting(naive.scores) > 0.5  # old classes' outputs are overwritten
    assert metrics.acc(replay.scores) > metrics.acc(naive.scores) + 0.3
    assert metrics.forgetting(replay.scores) < 0.5


def test_independent_has_exactly_zero_transfer_and_forgetting(blobs):
    record = run(Independent(), blobs)
    assert metrics.bwt(record.scores) == 0.0 and metrics.forgetting(record.scores) == 0.0
    assert metrics.fwt(record.scores) == 0.0  # R[j-1][j] and b_j evaluate the same untouched net
    assert metrics.acc(record.scores) > 0.95


def test_joint_trains_on_the_union_and_does_not_forget(blobs):
    record = run(Joint(), blobs)
    assert metrics.acc(record.scores) > 0.95 and metrics.forgetting(record.scores) < 0.05


def test_ewc_penalty_gradient_and_value_equal_autograd_of_the_sum_of_quadratic_terms():
    stream = blob_stream(n_tasks=3, scenario="task-il")
    for mode, gamma in (("separate", 1.0), ("online", 0.5)):
        ewc = EWC({"lambda": 2.0, "mode": mode, "gamma": gamma, "fisher_samples": 40})
        ctx = context(stream)
        ewc.setup(ctx)
        fishers, anchors = [], []
        for task in stream.tasks[:2]:
            ewc.learn(task)
            fishers.append(ewc._fisher(task, ctx.mask(task)))
            anchors.append({n: p.detach().clone() for n, p in ewc.model.named_parameters()})
        with torch.no_grad():
            for p in ewc.model.parameters():
                p.add_(0.1)
        params = dict(ewc.model.named_parameters())
        if mode == "separate":
            expected = sum((f[n] * (params[n] - a[n]) ** 2).sum() for f, a in zip(fishers, anchors) for n in params)
        else:
            expected = sum(((gamma * fishers[0][n] + fishers[1][n]) * (params[n] - anchors[1][n]) ** 2).sum()
                           for n in params)
        expected = 0.5 * 2.0 * expected
        expected_grads = torch.autograd.grad(expected, list(params.values()))
        loss_grads = {n: torch.randn_like(p) for n, p in params.items()}  # what backward left, kept and added to
        for n, p in params.items():
            p.grad = loss_grads[n].clone()
        value = ewc.add_penalty_grad()
        torch.testing.assert_close(value, expected.detach(), rtol=1e-4, atol=1e-6, msg=mode)
        for (n, p), g in zip(params.items(), expected_grads):
            torch.testing.assert_close(p.grad, loss_grads[n] + g, rtol=1e-5, atol=1e-6, msg=f"{mode} {n}")


def test_ewc_training_with_the_direct_penalty_gradient_equals_autograd_of_loss_plus_penalty():
    stream = blob_stream(n_tasks=2)
    ewc = EWC({"lambda": 5.0, "fisher_samples": 40})
    ctx = context(stream)
    ewc.setup(ctx)
    ewc.learn(stream.tasks[0])
    task, mask = stream.tasks[1], ctx.mask(stream.tasks[1])
    start = copy.deepcopy(ewc.state_dict())

    def loss_plus_penalty(idx):  # the penalty as a graph, differentiated by autograd
        plain = task_loss(ewc.model(task.x_train[idx]), task.y_train[idx], task.kind, mask)
        return plain + 0.5 * 5.0 * sum((s * p * p - 2 * m * p + c).sum() for p, s, m, c in zip(
            ewc.model.parameters(), *(ewc.sums[k].values() for k in "SMC")))

    trained = {}
    for way in ("autograd", "direct"):
        ewc.load_state_dict(copy.deepcopy(start))
        loss = fit(ewc.model, ewc.optimizer, task, ctx.training, ctx.shuffle_generator(task), mask,
                   batch_loss=loss_plus_penalty if way == "autograd" else None,
                   add_penalty=ewc.add_penalty_grad if way == "direct" else None)
        trained[way] = loss, [p.detach().clone() for p in ewc.model.parameters()]
    assert trained["direct"][0] == pytest.approx(trained["autograd"][0], rel=1e-5)  # 15 steps, penalty included
    for a, b in zip(trained["direct"][1], trained["autograd"][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ewc_computes_no_fisher_after_the_last_task(monkeypatch):
    stream = blob_stream(n_tasks=3)
    ewc = EWC({"fisher_samples": 40})
    fisher_of = []
    original = EWC._fisher
    monkeypatch.setattr(EWC, "_fisher", lambda self, task, mask: fisher_of.append(task.id) or original(self, task, mask))
    record = run(ewc, stream)
    assert fisher_of == [0, 1]  # the last task's Fisher would penalise no later task
    assert record.completed == 3 and np.isfinite(record.scores).all()


def test_ewc_reduces_forgetting_against_naive_in_domain_incremental_learning():
    stream = linear_domain_stream()
    naive = run(Naive(), stream, lr=0.1, epochs=10)
    ewc = run(EWC({"lambda": 10.0, "fisher_samples": 120}), stream, lr=0.1, epochs=10)
    # measured: naive forgets 0.39, EWC 0.33 (seed 0)
    assert metrics.forgetting(naive.scores) > 0.3
    assert metrics.forgetting(ewc.scores) < metrics.forgetting(naive.scores) - 0.03


def test_ewc_with_a_huge_lambda_fails_with_the_setting_to_change():
    with pytest.raises(NonFiniteLossError, match="params.lambda"):
        run(EWC({"lambda": 1000.0}), linear_domain_stream(), lr=0.1, epochs=10)


def test_a_diverging_plain_fine_tuning_names_the_learning_rate_only():
    stream = linear_domain_stream()
    huge = dataclasses.replace(stream, tasks=tuple(dataclasses.replace(t, x_train=t.x_train * 1e38)
                                                   for t in stream.tasks))
    with pytest.raises(NonFiniteLossError, match=r"lower `training.lr`$"):
        run(Naive(), huge)


def test_reservoir_keeps_a_bounded_uniform_sample():
    stream = blob_stream(n_tasks=3, n_per_class=100)
    replay = Replay({"buffer_size": 90})
    run(replay, stream)
    buffer = replay.buffer
    assert buffer.filled == 90 and buffer.seen == 600
    counts = np.bincount(buffer["task"].numpy(), minlength=3)
    assert counts.sum() == 90 and all(15 <= c <= 45 for c in counts)  # ~30 each for a uniform sample
    # every stored example is a real training example with its own label
    for x, y, t in zip(buffer["x"], buffer["y"], buffer["task"]):
        task = stream.tasks[int(t)]
        match = (task.x_train == x).all(1)
        assert match.any() and task.y_train[match][0] == y


def test_reservoir_draws_match_algorithm_r_with_one_draw_per_example():
    stream = blob_stream(n_tasks=4, n_per_class=30)  # 60 examples a task; the buffer overflows from task 1 on
    replay = Replay({"buffer_size": 50})
    replay.setup(context(stream))
    slots, seen = {}, 0
    for task in stream.tasks:
        replay.buffer.add_task(task, 0)
        rng = np.random.default_rng(derive_seed(0, "buffer", task.id))  # the definition, one example at a time
        for offset, example in enumerate(rng.permutation(len(task.x_train))):
            position = seen + offset
            slot = position if position < 50 else int(rng.integers(0, position + 1))
            if slot < 50:
                slots[slot] = (task.id, int(example))
        seen += len(task.x_train)
        entries = [slots[i] for i in range(len(slots))]  # slots fill in order: 0..len-1 are taken
        assert torch.equal(replay.buffer["x"][:len(slots)], torch.stack([stream.tasks[t].x_train[e] for t, e in entries]))
        assert replay.buffer["task"][:len(slots)].tolist() == [t for t, _ in entries]


def test_state_dict_round_trip_resumes_identically(blobs):
    full = run(Replay({"buffer_size": 30}), blobs)
    first = Replay({"buffer_size": 30})
    ctx = context(blobs)
    first.setup(ctx)
    partial = play(first, ctx, "replay")  # same run, to take a state after 3 tasks
    assert np.array_equal(partial.scores, full.scores)
    resumed = Replay({"buffer_size": 30})
    resumed.setup(context(blobs))
    resumed.load_state_dict(first.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.parameters(), first.model.parameters()))
    assert torch.equal(resumed.buffer["x"], first.buffer["x"])


def test_registry_lists_builtins_and_suggests_close_names():
    assert {"naive", "joint", "independent", "replay", "ewc"} <= set(available())
    assert strategy_class("ewc") is EWC
    with pytest.raises(UnknownStrategyError, match="Did you mean replay"):
        strategy_class("replya")
    with pytest.raises(UnknownStrategyError, match="cannot import module"):
        strategy_class("no_such_module:Thing")


def test_avalanche_names_are_listed_and_without_avalanche_say_what_to_install(monkeypatch):
    assert {"avalanche.EWC", "avalanche.SI", "avalanche.ICaRL"} <= set(available())
    monkeypatch.setitem(sys.modules, "avalanche", None)  # as if the extra were not installed
    with pytest.raises(UnknownStrategyError, match=r"strategy 'avalanche.EWC' needs Avalanche.*"
                                                   r"pip install 'lifelong\[avalanche\]'"):
        strategy_class("avalanche.EWC")
    with pytest.raises(UnknownStrategyError, match="Did you mean avalanche.EWC"):
        strategy_class("avalanche.EWc")
