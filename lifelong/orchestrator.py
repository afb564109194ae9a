"""Play a stream through one strategy and keep the lifetime record. The whole loop is `play`."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch

from lifelong.errors import UserError
from lifelong.callbacks import Callback
from lifelong.evaluation.evaluator import evaluate_stream, evaluate_stream_few_shot
from lifelong.evaluation.fewshot import support_set
from lifelong.evaluation.record import LifetimeRecord
from lifelong.strategies.base import Strategy, StrategyContext
from lifelong.training import NonFiniteLossError


class StrategyError(UserError, RuntimeError):
    """A strategy raised while learning or predicting; the message names it and the task."""


def play(strategy: Strategy, ctx: StrategyContext, label: str, callbacks: list[Callback] = (),
         record: LifetimeRecord | None = None) -> LifetimeRecord:
    """Evaluate all tasks before training (row 0), then learn each task and evaluate all tasks again.

    Given a partly filled `record` (resume, with the strategy's state already loaded), it goes
    on after the last completed task.
    """
    stream = ctx.stream
    tasks = tuple(task.to(ctx.device) for task in stream.tasks)
    record = record or LifetimeRecord(label, ctx.seed, [t.name for t in tasks], stream.kind)
    evaluate = _evaluator(strategy, ctx, tasks, label, record)
    try:
        for cb in callbacks:
            cb.on_run_start(stream, record)
        if record.completed == 0:
            evaluate(0, "before training")
            for cb in callbacks:
                cb.on_eval(0, record)
        for task in tasks[record.completed:]:
            for cb in callbacks:
                cb.on_task_start(task, record)
            started = time.perf_counter()
            stats = _guarded(lambda: strategy.learn(task), label, f"learning {task.name}")
            _synchronize(ctx.device)
            record.train_seconds[task.id] = time.perf_counter() - started
            record.peak_memory_mb[task.id] = _peak_memory_mb(ctx.device)
            record.train_stats.append(dict(stats or {}))
            row = task.id + 1
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


def _evaluator(strategy, ctx: StrategyContext, tasks, label: str, record: LifetimeRecord):
    """A function filling row `row` of the record, standard or few-shot as the config says."""
    spec = ctx.evaluation
    if spec.mode == "standard":
        def evaluate(row: int, when: str) -> None:
            both = _guarded(lambda: evaluate_stream(strategy, tasks, ctx.stream.n_outputs), label, when)
            record.scores[row], record.losses[row] = both[:, 0], both[:, 1]
        return evaluate

    supports = [support_set(task, spec.shots, ctx.seed) for task in tasks]
    if record.curves is None:
        record.curves = np.full((len(tasks) + 1, len(tasks), spec.steps + 1), np.nan)

    def evaluate_few_shot(row: int, when: str) -> None:
        curves = _guarded(lambda: evaluate_stream_few_shot(strategy, tasks, supports, spec.steps), label, when)
        record.curves[row] = curves[:, :, 0]
        record.scores[row], record.losses[row] = curves[:, -1, 0], curves[:, -1, 1]
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


def _peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA; the process's peak resident set (max RSS) on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
