"""The lifetime loop: row 0, every task after every step, determinism, failures that keep the record."""

import numpy as np
import pytest
import torch

from lifelong.callbacks import Callback
from lifelong.evaluation.evaluator import evaluate_stream
from lifelong.evaluation.fewshot import EvaluationSpec, support_set
from lifelong.orchestrator import StrategyError, play
from lifelong.strategies.naive import Naive
from tests.conftest import blob_stream, context


def test_row_zero_is_the_untrained_model_and_every_row_scores_every_task(blobs):
    strategy = Naive()
    ctx = context(blobs)
    strategy.setup(ctx)
    untrained = evaluate_stream(strategy, blobs.tasks, blobs.n_outputs)[:, 0]
    record = play(strategy, ctx, "naive")
    assert record.scores.shape == (4, 3) and not np.isnan(record.scores).any()
    assert np.array_equal(record.scores[0], untrained)
    assert record.completed == 3 and (record.train_seconds > 0).all() and (record.peak_memory_mb > 0).all()
    # class-incremental fine-tuning: right after task i, task i is learned and later tasks are not
    assert all(record.scores[i + 1, i] > 0.9 for i in range(3))
    assert record.scores[1, 2] == 0.0  # classes 4/5 never predicted after training on 0/1 only


def test_same_seed_same_record_and_extra_evaluations_change_nothing(blobs):
    class EvaluateAgain(Callback):
        def on_task_end(self, task, record, strategy):
            evaluate_stream(strategy, blobs.tasks, blobs.n_outputs)
            torch.rand(7)  # global RNG use must not leak into training either

    records = []
    for callbacks in ([], [], [EvaluateAgain()]):
        strategy = Naive()
        ctx = context(blobs, seed=5)
        strategy.setup(ctx)
        records.append(play(strategy, ctx, "naive", callbacks))
    assert np.array_equal(records[0].scores, records[1].scores)
    assert np.array_equal(records[0].scores, records[2].scores)
    other = Naive()
    ctx = context(blobs, seed=6)
    other.setup(ctx)
    assert not np.array_equal(play(other, ctx, "naive").scores, records[0].scores)


def test_a_crashing_strategy_is_named_and_the_record_so_far_is_kept(blobs):
    class CrashesOnTask2(Naive):
        def learn(self, task):
            if task.id == 1:
                raise RuntimeError("boom")
            return super().learn(task)

    seen = {}

    class Watch(Callback):
        def on_exception(self, error, record):
            seen["error"], seen["completed"] = error, record.completed

    strategy = CrashesOnTask2()
    ctx = context(blobs)
    strategy.setup(ctx)
    with pytest.raises(StrategyError, match="strategy 'mine' failed while learning T2: RuntimeError: boom"):
        play(strategy, ctx, "mine", [Watch()])
    assert seen["completed"] == 1 and isinstance(seen["error"], StrategyError)


def test_few_shot_support_sets_hold_k_shots_per_class_and_too_few_is_an_error():
    stream = blob_stream(n_per_class=10)
    x, y = support_set(stream.tasks[1], shots=3, seed=0)
    assert x.shape == (6, 8) and sorted(y.tolist()) == [2, 2, 2, 3, 3, 3]
    again, _ = support_set(stream.tasks[1], shots=3, seed=0)
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match="lower evaluation.shots"):
        support_set(stream.tasks[1], shots=11, seed=0)


def test_few_shot_evaluation_records_curves_and_leaves_the_learner_unchanged(blobs):
    strategy = Naive()
    ctx = context(blobs)
    ctx.evaluation = EvaluationSpec(mode="few-shot", shots=5, steps=4, inner_lr=0.5)
    strategy.setup(ctx)
    before = {k: v.clone() for k, v in strategy.model.state_dict().items()}
    strategy.adaptation_curves(list(blobs.tasks), [support_set(t, 5, 0) for t in blobs.tasks], 4)
    assert all(torch.equal(before[k], v) for k, v in strategy.model.state_dict().items())
    record = play(strategy, ctx, "naive")
    assert record.curves.shape == (4, 3, 5)
    assert np.array_equal(record.curves[:, :, -1], record.scores)
    # adapting on the support set of an unseen task lifts its score from the step-0 value
    assert record.curves[1, 2, -1] > record.curves[1, 2, 0]
