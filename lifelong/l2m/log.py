"""A lifetime as an l2logger log (format 1.1), written with the real `l2logger` package.

The lifetime is the sequence of blocks the run played: block 0 tests every task row 0 scored (the
model before training); then, for task i, a train block on task i and a test block on every task
row i scored. One experience per (block, task): its performance is the task's test score (accuracy,
or negative MSE) from the record. A train block holds the task's learning curve when the run took
one (`evaluation.within_task_every`: one experience per probe, the last at the end of its training);
otherwise its one experience is the task's score right after the block (R[i][i]), and the L2M
metrics that need a curve inside a block (sample efficiency) are NaN, with that reason. Test cells a
schedule skipped are left out of the log; a train block whose task was not scored after it
(`evaluation.every` > 1) holds NaN, which L2M's reader drops as l2metrics does, so L2M metrics want
`evaluation: {every: 1}`.

The single-task expert of task j is the independent learner (same model and budget, from scratch
on task j alone): one log per task, a train block (its learning curve when the run has the
`independent` strategy with within-task curves, else r_j from references.json) and a test block
holding r_j.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lifelong.evaluation.record import LifetimeRecord
from lifelong.l2m import require_l2logger

WORKER = "lifelong"
SCENARIO_INFO = {"scenario_type": "custom", "complexity": "1-low", "difficulty": "2-medium"}


def l2m_task_names(names: list[str]) -> list[str]:
    """L2M task names (<task>_<variant>, lower case, as l2metrics lower-cases them): 'task<j>_<name>'."""
    return [f"task{j + 1}_{re.sub('[^0-9a-z]', '', name.lower()) or 'x'}" for j, name in enumerate(names)]


def write_lifetime_log(record: LifetimeRecord, folder: Path, scenario: dict) -> Path:
    """The record's lifetime as an l2logger log in `folder` (replaced if there)."""
    names = l2m_task_names(record.task_names)

    def blocks(log):
        block, exp = 0, 0
        for row in range(record.completed + 1):
            if row > 0:
                block += 1
                for value in _train_values(record, row - 1):
                    exp = _log(log, block, "train", exp, names[row - 1], row - 1, value, record.score_name)
                block += 1
            for j in np.flatnonzero(~np.isnan(record.scores[row])):
                exp = _log(log, block, "test", exp, names[j], int(j), record.scores[row, j], record.score_name)

    return _write(folder, record.score_name, {**SCENARIO_INFO, **scenario}, blocks)


def _train_values(record: LifetimeRecord, task: int) -> list[float]:
    """A train block's experiences: the task's within-task curve, or its score right after training."""
    curve = record.within_task.get(task)
    return [point[3] for point in curve] if curve else [record.scores[task + 1, task]]


def write_expert_log(task_index: int, task_name: str, score: float, score_name: str, folder: Path,
                     scenario: dict, curve: list[float] | None = None) -> Path:
    """The single-task expert of one task (the independent learner's r_j, after its learning `curve`
    when there is one) as an l2logger log."""
    name = l2m_task_names([task_name])[0].replace("task1_", f"task{task_index + 1}_", 1)

    def blocks(log):
        exp = 0
        for value in curve or [score]:
            exp = _log(log, 0, "train", exp, name, task_index, value, score_name)
        _log(log, 1, "test", exp, name, task_index, score, score_name)

    return _write(folder, score_name, {**SCENARIO_INFO, **scenario, "scenario_type": "ste"}, blocks)


def _log(log, block: int, block_type: str, exp: int, task_name: str, index: int, value: float,
         column: str) -> int:
    log.log_record({"block_num": block, "block_type": block_type, "exp_num": exp, "worker_id": WORKER,
                    "task_name": task_name, "task_params": {"task": index}, column: float(value)})
    return exp + 1


def _write(folder: Path, column: str, scenario: dict, blocks) -> Path:
    """Write with l2logger into a temporary folder beside `folder`, then move it into place: l2logger
    names its folder after the clock, and a reader should never see half a log."""
    l2logger, _ = require_l2logger()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        log = l2logger.DataLogger(tmp, "lifelong", {"metrics_columns": [column]}, scenario)
        try:
            blocks(log)
        finally:
            log.close()
        if folder.exists():
            shutil.rmtree(folder)
        Path(log.scenario_dir).rename(folder)
    return folder
