"""Within-task learning curves (`evaluation.within_task_every`): probes of the task being learned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.evaluation.record import LifetimeRecord
from lifelong.orchestrator import play
from lifelong.record_log import RecordLog
from lifelong.strategies.naive import Naive
from lifelong.strategies.replay import Replay
from tests.conftest import blob_stream, context


def played(strategy, every: int, cost: str = "basic", epochs: int = 2) -> LifetimeRecord:
    stream = blob_stream(n_tasks=2, n_per_class=24)  # 48 training examples, batch 16: 3 steps per epoch
    ctx = dataclasses.replace(context(stream, epochs=epochs), evaluation=EvaluationSpec(within_task_every=every))
    strategy.setup(ctx)
    return play(strategy, ctx, "s", cost=cost)


@pytest.mark.parametrize("cost", ["basic", "full"])
def test_probes_score_the_task_every_k_steps_at_the_flops_counted_so_far_and_change_nothing(cost):
    probed, plain = played(Naive(), every=2, cost=cost), played(Naive(), every=0, cost=cost)
    assert np.array_equal(probed.scores, plain.scores)  # probing never changes what is learned
    assert [c["train_flops"] for c in probed.task_cost] == [c["train_flops"] for c in plain.task_cost]
    for task, points in probed.within_task.items():
        points = np.array(points)
        assert points[:, 0].tolist() == [2, 4, 6]  # 6 steps of 16 examples, every 2nd probed
        assert points[:, 1].tolist() == [32, 64, 96]
        per_step = probed.task_cost[task]["train_flops"] / 6  # every step has the same shapes
        assert points[:, 2] == pytest.approx([2 * per_step, 4 * per_step, 6 * per_step])
        assert points[-1, 3] == pytest.approx(probed.scores[task + 1, task])  # the last probe is the task's end
    assert not plain.within_task


def test_the_curve_ends_where_the_training_ended():
    record = played(Naive(), every=4)  # steps 4 and 6 (the last, not a multiple of 4)
    points = np.array(record.within_task[0])
    assert points[:, 0].tolist() == [4, 6] and points[:, 1].tolist() == [64, 96]
    assert points[-1, 2] == pytest.approx(record.task_cost[0]["train_flops"])  # the final probe is not counted
    assert points[-1, 3] == pytest.approx(record.scores[1, 0])


def test_with_cost_off_the_curve_has_samples_and_no_flops():
    points = np.array(played(Replay({"buffer_size": 20}), every=3, cost="off").within_task[1])
    assert points[:, 1].tolist() == [48, 96] and np.isnan(points[:, 2]).all()


def test_the_curves_go_through_the_record_log_and_checkpoint_state(tmp_path):
    record = played(Naive(), every=3)
    log = RecordLog(tmp_path / "record.rows.jsonl")
    log.start(record)
    for task in range(record.n_tasks):
        log.task(record, task)
    (read,) = log.read()
    assert read.within_task == record.within_task
    assert LifetimeRecord.from_state(record.to_state()).within_task == record.within_task
    assert record.within_task_frame()[["task", "step"]].values.tolist() == [[0, 3], [0, 6], [1, 3], [1, 6]]


def test_few_shot_evaluation_refuses_within_task_probes():
    with pytest.raises(ValueError, match="within_task_every"):
        EvaluationSpec(mode="few-shot", within_task_every=5)
