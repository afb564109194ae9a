"""Play a stream through one strategy and keep the lifetime record. The whole loop is `play`."""

from __future__ import annotations

import resource
import time

import torch

from lifelong.callbacks import Callback
from lifelong.evaluation.evaluator import evaluate_stream
from lifelong.evaluation.record import LifetimeRecord
from lifelong.strategies.base import Strategy, StrategyContext
from lifelong.training import NonFiniteLossError


class StrategyError(RuntimeError):
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
    try:
        for cb in callbacks:
            cb.on_run_start(stream, record)
        if record.completed == 0:
            record.scores[0], record.losses[0] = _evaluate(strategy, tasks, stream.n_outputs, label, "before training")
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
            record.scores[row], record.losses[row] = _evaluate(strategy, tasks, stream.n_outputs, label,
                                                               f"evaluating after {task.name}")
            for cb in callbacks:
                cb.on_eval(row, record)
            for cb in callbacks:
                cb.on_task_end(task, record, strategy)
    except BaseException as error:
        for cb in callbacks:
            cb.on_exception(error, record)
        raise
    for cb in callbacks:
        cb.on_run_end(record)
    return record


def _evaluate(strategy, tasks, n_outputs, label, when):
    return _guarded(lambda: evaluate_stream(strategy, tasks, n_outputs), label, when)


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
