"""Row evaluation: batched over tasks that share a predictor, equal to scoring task by task;
evaluation schedules that leave the skipped cells NaN; `completed` and resume under them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from lifelong.callbacks import Callback
from lifelong.evaluation import evaluator
from lifelong.evaluation.evaluator import evaluate_stream
from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.evaluation.record import LifetimeRecord
from lifelong.evaluation.schedule import Schedule
from lifelong.orchestrator import play
from lifelong.strategies.independent import Independent
from lifelong.strategies.naive import Naive
from lifelong.streams.task import Stream, Task
from lifelong.training import output_mask
from tests.conftest import blob_stream, context


def task_by_task(strategy, stream: Stream) -> np.ndarray:
    """The per-task evaluation the batched one must equal: one predictor call and pass per task."""
    rows = []
    for task in stream.tasks:
        with torch.no_grad():
            out = strategy.predictor(task)(task.x_test)
        if task.kind == "regression":
            mse = float(((out.reshape(task.y_test.shape) - task.y_test) ** 2).sum()) / len(task.y_test)
            rows.append([-mse, mse])
            continue
        mask = output_mask(task, stream.n_outputs, out.device)
        out = out if mask is None else out + mask
        rows.append([float((out.argmax(1) == task.y_test).float().sum() / len(task.y_test)),
                     float(F.cross_entropy(out, task.y_test))])
    return np.array(rows)


class CountCalls(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append(len(x))
        return self.model(x)


def regression_stream(n_tasks=3) -> Stream:
    g = torch.Generator().manual_seed(0)
    tasks = []
    for i in range(n_tasks):
        x = torch.randn(30 + 7 * i, 8, generator=g)
        tasks.append(Task(i, f"T{i + 1}", "regression", x, x[:, :1] * i, x, x[:, :1] * i + 1))
    return Stream("lin", "domain-il", tuple(tasks), (8,), 1, 0)


@pytest.mark.parametrize("stream", [blob_stream(4, scenario="class-il"), blob_stream(4, scenario="task-il"),
                                    regression_stream()], ids=["class-il", "task-il", "regression"])
def test_a_shared_predictor_scores_the_row_in_one_pass_equal_to_task_by_task(stream):
    strategy = Naive()
    strategy.setup(context(stream))
    strategy.learn(stream.tasks[0])
    strategy.model = counted = CountCalls(strategy.model)
    row = evaluate_stream(strategy, stream.tasks, stream.n_outputs)
    assert counted.calls == [sum(len(t.y_test) for t in stream.tasks)]  # one forward pass for all tasks
    expected = task_by_task(strategy, stream)
    assert np.allclose(row, expected, rtol=1e-5, atol=1e-6)
    if stream.kind == "classification":
        assert np.array_equal(row[:, 0], expected[:, 0]) and row[0, 0] > 0.9 and row[3, 0] < 0.9
    else:
        assert (row[:, 0] < 0).all() and np.array_equal(row[:, 0], -row[:, 1])


def test_batches_are_capped_at_eval_batch(monkeypatch):
    stream = blob_stream(3, n_per_class=40)  # 80 test examples per task
    monkeypatch.setattr(evaluator, "EVAL_BATCH", 50)
    strategy = Naive()
    strategy.setup(context(stream))
    strategy.model = counted = CountCalls(strategy.model)
    row = evaluate_stream(strategy, stream.tasks, stream.n_outputs)
    assert counted.calls == [50, 50, 50, 50, 40]
    assert np.array_equal(row[:, 0], task_by_task(strategy, stream)[:, 0])


def test_a_predictor_per_task_is_asked_once_per_task_and_scores_its_own_task():
    stream = blob_stream(3, scenario="task-il")
    strategy = Independent()
    strategy.setup(context(stream))
    strategy.learn(stream.tasks[1])
    asked = []
    predictor = strategy.predictor
    strategy.predictor = lambda task, support=None: asked.append(task.id) or predictor(task)
    row = evaluate_stream(strategy, stream.tasks, stream.n_outputs)
    assert asked == [0, 1, 2]
    strategy.predictor = predictor
    assert np.array_equal(row[:, 0], task_by_task(strategy, stream)[:, 0])
    assert np.allclose(row, task_by_task(strategy, stream), rtol=1e-5)
    assert row[1, 0] > 0.9  # the trained model of task 2 scores on task 2 only


def played(evaluation: EvaluationSpec, n_tasks=5, strategy=None, seed=0, callbacks=(), record=None,
           stream=None) -> LifetimeRecord:
    stream = stream or blob_stream(n_tasks, n_per_class=10)
    strategy = strategy or Naive()
    ctx = context(stream, seed=seed, epochs=1)
    ctx.evaluation = evaluation
    strategy.setup(ctx)
    return play(strategy, ctx, "naive", list(callbacks), record)


def filled(record) -> list[list[int]]:
    return [np.flatnonzero(~np.isnan(row)).tolist() for row in record.scores]


def test_every_k_evaluates_every_kth_row_row_zero_and_the_last_leaving_nan():
    record = played(EvaluationSpec(every=2))
    assert filled(record) == [[0, 1, 2, 3, 4], [], [0, 1, 2, 3, 4], [], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert np.isnan(record.losses[[1, 3]]).all() and record.completed == 5
    full = played(EvaluationSpec())
    assert np.array_equal(record.scores[[0, 2, 4, 5]], full.scores[[0, 2, 4, 5]])


@pytest.mark.parametrize("tasks,expected", [
    ("seen", [[0, 1, 2, 3], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]),
    ("seen+next", [[0, 1, 2, 3], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]),
])
def test_seen_and_seen_plus_next_score_a_growing_prefix_after_a_full_row_zero(tasks, expected):
    record = played(EvaluationSpec(tasks=tasks), n_tasks=4)
    assert filled(record) == expected
    full = played(EvaluationSpec(), n_tasks=4)
    assert all(np.array_equal(record.scores[i, cells], full.scores[i, cells]) for i, cells in enumerate(expected))


def test_a_sample_is_the_same_tasks_in_every_row_strategy_and_seed_and_follows_the_stream_seed():
    a = played(EvaluationSpec(tasks="sample(3)"), n_tasks=8)
    b = played(EvaluationSpec(tasks="sample(3)", every=3), n_tasks=8, strategy=Independent(), seed=4)
    columns = filled(a)[0]
    assert len(columns) == 3 and all(cells == columns for cells in filled(a))
    assert all(cells in (columns, []) for cells in filled(b)) and filled(b)[3] == columns
    assert Schedule.of(EvaluationSpec(tasks="sample(3)"), 8, 0).pool == tuple(columns)
    other = played(EvaluationSpec(tasks="sample(3)"), stream=blob_stream(8, n_per_class=10, seed=1))
    assert filled(other)[0] == list(Schedule.of(EvaluationSpec(tasks="sample(3)"), 8, 1).pool)
    assert len({Schedule.of(EvaluationSpec(tasks="sample(3)"), 8, s).pool for s in range(10)}) > 1


def test_few_shot_rows_follow_the_schedule_too():
    record = played(EvaluationSpec(mode="few-shot", shots=3, steps=2, every=2), n_tasks=3)
    assert filled(record) == [[0, 1, 2], [], [0, 1, 2], [0, 1, 2]]
    assert np.isnan(record.curves[1]).all() and not np.isnan(record.curves[[0, 2, 3]]).any()


@pytest.mark.parametrize("fields,message", [
    ({"every": 0}, "every\n  Input should be greater than or equal to 1"),
    ({"tasks": "some"}, "tasks\n  Value error, 'some' is not a task choice; use all, seen, seen\\+next or sample"),
    ({"tasks": "sample(0)"}, "'sample\\(0\\)' is not a task choice"),
])
def test_bad_schedules_are_refused_naming_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        EvaluationSpec(**fields)
    with pytest.raises(ValueError, match=r"sample\(6\) asks for more tasks than the stream's 5; lower n"):
        EvaluationSpec(tasks="sample(6)").check_stream(5)


def test_completed_is_set_by_the_orchestrator_and_resume_under_a_schedule_ends_with_the_same_record():
    spec = EvaluationSpec(every=2)
    saved = {}

    class Stop(Exception):
        pass

    class KillAfterTask3(Callback):
        def on_task_end(self, task, record, strategy):
            if task.id == 2:  # row 3 was skipped by the schedule
                saved["record"], saved["strategy"] = record.to_state(), strategy.state_dict()
                raise Stop

    with pytest.raises(Stop):
        played(spec, callbacks=[KillAfterTask3()])
    assert saved["record"]["completed"] == 3
    record = LifetimeRecord.from_state(saved["record"])
    assert record.completed == 3 and np.isnan(record.scores[3]).all()
    stream = blob_stream(5, n_per_class=10)
    strategy = Naive()
    ctx = context(stream, epochs=1)
    ctx.evaluation = spec
    strategy.setup(ctx)
    strategy.load_state_dict(saved["strategy"])
    resumed = play(strategy, ctx, "naive", [], record)
    full = played(spec)
    assert resumed.completed == full.completed == 5
    assert np.array_equal(resumed.scores, full.scores, equal_nan=True)


def test_the_test_set_keeps_one_copy_of_the_test_splits_and_no_training_data():
    stream = blob_stream(3, scenario="task-il")
    test_set = evaluator.TestSet.of(stream.tasks, stream.n_outputs)
    assert test_set.starts == (0, 80, 160, 240) and test_set.segment.tolist() == [0] * 80 + [1] * 80 + [2] * 80
    for task, original in zip(test_set.tasks, stream.tasks):
        assert task.x_test.untyped_storage().data_ptr() == test_set.x.untyped_storage().data_ptr()
        assert torch.equal(task.x_test, original.x_test) and len(task.x_train) == 0
    assert test_set.masks[1].tolist() == [float("-inf")] * 2 + [0.0] * 2 + [float("-inf")] * 2
    head = test_set.head(2)
    assert len(head.tasks) == 2 and len(head.x) == 160 and head.counts.tolist() == [80.0, 80.0]


def test_a_listed_reference_whose_diagonal_a_schedule_skipped_is_trained_instead(tmp_path, monkeypatch):
    from lifelong.config import ExperimentConfig
    from lifelong.report import ReportResult
    from lifelong.run import run_experiment

    monkeypatch.setattr("lifelong.run.write_report", lambda folder: ReportResult([], []))
    config = ExperimentConfig.model_validate({
        "name": "tiny", "device": "cpu", "model": {"hidden": [16]}, "evaluation": {"every": 2},
        "stream": {"name": "r", "builder": "repeat", "dataset": "digits", "classes": [0, 1], "n_tasks": 3,
                   "train_per_task": 40, "test_per_task": 40},
        "training": {"epochs": 1, "batch_size": 16, "lr": 0.05}, "strategies": [{"name": "independent"}],
        "references": {"cache_dir": str(tmp_path / "cache"), "joint_at": [3]}})
    result = run_experiment(config, out=tmp_path / "run", progress=False)
    assert np.isnan(result.records[0].scores[1, 0])  # row 1 skipped: the diagonal is not all there
    entry = result.references["entries"][0]
    assert entry["independent_source"] == "0 from cache, 3 trained"
    assert np.isfinite(entry["independent"]).all()
    assert entry["independent"][1] == result.records[0].scores[2, 1]  # the same learner, trained alone


def test_the_progress_line_says_when_a_row_was_not_evaluated():
    import io

    from rich.console import Console

    from lifelong.progress import ProgressDisplay

    out = io.StringIO()
    display = ProgressDisplay(5, Console(file=out, width=200))
    played(EvaluationSpec(every=2, tasks="seen"), callbacks=[display])
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and "T1: not evaluated" in lines[0] and "T2: accuracy seen=" in lines[1]
    assert "nan" not in out.getvalue()
