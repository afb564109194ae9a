"""Play a stream through one strategy and keep the lifetime record. The whole loop is `play`."""

from __future__ import annotations

import time

import numpy as np
import torch

from lifelong.errors import UserError
from lifelong.callbacks import Callback
from lifelong.cost.meter import CostMeter
from lifelong.evaluation.correctness import RowCorrectness
from lifelong.evaluation.evaluator import evaluate_stream_few_shot, evaluate_test_set, few_shot_set_of, test_set_of
from lifelong.evaluation.record import LifetimeRecord
from lifelong.evaluation.schedule import Schedule
from lifelong.evaluation.within_task import WithinTaskProbe
from lifelong.strategies.base import Strategy, StrategyContext
from lifelong.training import NonFiniteLossError


class StrategyError(UserError, RuntimeError):
    """A strategy raised while learning or predicting; the message names it and the task."""


def play(strategy: Strategy, ctx: StrategyContext, label: str, callbacks: list[Callback] = (),
         record: LifetimeRecord | None = None, cost: str = "basic") -> LifetimeRecord:
    """Evaluate before training (row 0), then learn each task and evaluate as the schedule says
    (`evaluation.every`, `evaluation.tasks`; by default every task after every task), and, with
    `evaluation.within_task_every`, the task being learned during its training.

    Tasks are built when reached and released after; only what evaluation needs (the evaluated
    tasks' test splits) is kept. Given a partly filled `record` (resume, with the strategy's state
    already loaded), it goes on after the last completed task. `cost` ("off", "basic", "full") is
    how much of each task's and evaluation's cost is counted (lifelong.cost).
    """
    stream = ctx.stream
    schedule = Schedule.of(ctx.evaluation, len(stream), stream.seed)
    record = record or LifetimeRecord(label, ctx.seed, list(stream.tasks.names), stream.kind)
    meter = CostMeter(cost, ctx.device)
    scored = _evaluator(strategy, ctx, schedule, label, record)

    def evaluate(row: int, when: str) -> None:
        with meter.evaluation() as spent:
            scored(row, when)
        if spent:
            record.eval_cost[row] = spent
    try:
        for cb in callbacks:
            cb.on_run_start(stream, record)
        if record.completed == 0:
            evaluate(0, "before training")
            for cb in callbacks:
                cb.on_eval(0, record)
        for index in range(record.completed, len(stream)):
            task = stream.tasks[index].to(ctx.device)
            for cb in callbacks:
                cb.on_task_start(task, record)
            probe = WithinTaskProbe.active(ctx.evaluation.within_task_every, strategy, task, stream.n_outputs)
            with meter.training(strategy, task, ctx) as spent, probe as probed:
                started = time.perf_counter()
                stats = _guarded(lambda: strategy.learn(task), label, f"learning {task.name}")
                _synchronize(ctx.device)
                record.train_seconds[task.id] = time.perf_counter() - started
            if probed is not None:
                record.within_task[task.id] = probed.points
            record.peak_memory_mb[task.id] = spent.pop("peak_memory_mb")
            record.train_stats.append(dict(stats or {}))
            record.task_cost.append(spent)
            row = task.id + 1
            if schedule.evaluates(row):
                evaluate(row, f"evaluating after {task.name}")
                for cb in callbacks:
                    cb.on_eval(row, record)
            record.completed = row
            for cb in callbacks:
                cb.on_task_end(task, record, strategy)
    except BaseException as error:
        for cb in callbacks:
            cb.on_exception(error, record)
        raise
    for cb in callbacks:
        cb.on_run_end(record)
    return record


def _evaluator(strategy, ctx: StrategyContext, schedule: Schedule, label: str, record: LifetimeRecord):
    """A function filling row `row` of the record on the tasks the schedule gives, standard or few-shot."""
    spec, stream, pool = ctx.evaluation, ctx.stream, np.array(schedule.pool)
    if spec.mode == "standard":
        test_set = test_set_of(stream, schedule.pool, ctx.device)
        classification = stream.kind == "classification"  # per-example correctness, for prediction flips

        def evaluate(row: int, when: str) -> None:
            k = schedule.scored(row)
            part = test_set.head(k)
            correct = torch.zeros(len(part.y), dtype=torch.bool, device=part.y.device) if classification else None
            both = _guarded(lambda: evaluate_test_set(strategy, part, correct), label, when)
            record.scores[row, pool[:k]], record.losses[row, pool[:k]] = both[:, 0], both[:, 1]
            if classification:
                record.correct = RowCorrectness.of(row, pool[:k], np.diff(part.starts), correct.cpu().numpy())
        return evaluate

    held_out = few_shot_set_of(stream, schedule.pool, ctx.device, spec.shots, ctx.seed)
    if record.curves is None:
        record.curves = np.full((len(stream) + 1, len(stream), spec.steps + 1), np.nan)

    def evaluate_few_shot(row: int, when: str) -> None:
        k = schedule.scored(row)
        part = held_out.head(k)
        curves = _guarded(lambda: evaluate_stream_few_shot(strategy, part.tasks, part.supports, spec.steps), label,
                          when)
        record.curves[row, pool[:k]] = curves[:, :, 0]
        record.scores[row, pool[:k]], record.losses[row, pool[:k]] = curves[:, -1, 0], curves[:, -1, 1]
    return evaluate_few_shot


def _guarded(call, label: str, when: str):
    """Run a strategy call; wrap its crash in an error naming the strategy and the moment."""
    try:
        return call()
    except NonFiniteLossError as error:
        raise NonFiniteLossError(f"strategy {label!r}, while {when}: {error}") from error
    except Exception as error:
        raise StrategyError(f"strategy {label!r} failed while {when}: {type(error).__name__}: {error}") from error


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

