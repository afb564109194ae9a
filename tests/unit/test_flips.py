"""Prediction flips: the counts and rates on hand-worked correctness vectors, the bit-packed storage,
and a real run whose flips must agree with its accuracy changes and survive a resume byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifelong.evaluation.correctness import RowCorrectness
from lifelong.evaluation.flips import flip_counts, flip_matrix, read_flips
from lifelong.evaluation.registry import METRICS
from lifelong.record_log import LOG_NAME
from lifelong.run import resume_experiment, run_experiment
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)
from tests.unit.test_run_folder import StopAt, config, interrupted, no_report  # noqa: F401


def test_flip_counts_on_a_hand_worked_pair():
    before, after = [1, 1, 0, 0, 1], [1, 0, 1, 0, 0]
    # negative flips: examples 2 and 5; positive flip: example 3; errors after: 2, 4, 5
    assert flip_counts(before, after).tolist() == [2, 1, 3, 5]
    with pytest.raises(ValueError, match="differ in length"):
        flip_counts([1, 0], [1])


def rows():
    """Three evaluated rows of a two-task lifetime; task 2 is not scored in row 2."""
    return [RowCorrectness.of(0, [0, 1], [4, 2], [1, 0, 0, 0, 0, 0]),
            RowCorrectness.of(1, [0, 1], [4, 2], [1, 1, 0, 0, 1, 0]),
            RowCorrectness.of(2, [0], [4], [0, 1, 0, 0])]


def test_flip_rates_match_the_hand_worked_values():
    flips = flip_matrix(rows(), n_tasks=2)
    assert np.isnan(flips[0]).all() and np.isnan(flips[2, 1]).all()  # no model before row 0; task 2 not scored
    assert flips[1, 0].tolist() == [0, 1, 2, 4] and flips[1, 1].tolist() == [0, 1, 1, 2]
    assert flips[2, 0].tolist() == [1, 0, 3, 4]
    # terms: NFR 0, 0, 1/4; NFI 0/2, 0/1, 1/3; PFR 1/4, 1/2, 0
    assert METRICS["nfr"](flips) == pytest.approx(1 / 12)
    assert METRICS["nfi"](flips) == pytest.approx(1 / 9)
    assert METRICS["pfr"](flips) == pytest.approx(1 / 4)
    result = METRICS["nfr"].evaluate({"R": np.zeros((3, 2)), "flips": flips})
    assert (result.used, result.of) == (3, 4)


def test_nfi_skips_a_task_the_new_model_gets_all_right():
    flips = flip_matrix([RowCorrectness.of(0, [0], [3], [0, 1, 1]), RowCorrectness.of(1, [0], [3], [1, 1, 1])], 1)
    assert METRICS["pfr"](flips) == pytest.approx(1 / 3) and METRICS["nfr"](flips) == 0
    assert np.isnan(METRICS["nfi"](flips))  # no error after the update: 0 / 0 is left out, not 0


def test_correctness_is_bit_packed_and_reads_back():
    row = RowCorrectness.of(3, [0, 2], [5, 6], np.arange(11) % 3 == 0)
    assert len(row.bits) == 2  # 11 examples in 2 bytes
    back = RowCorrectness.from_line(json.loads(json.dumps(row.line("naive", 0))))
    assert back == row and back.per_task()[2].tolist() == [False, True, False, False, True, False]
    bad = {**row.line("naive", 0), "sizes": [[5, 1], [20, 1]]}
    with pytest.raises(ValueError, match="2 bytes for 25 examples"):
        RowCorrectness.from_line(bad)


def test_a_run_logs_flips_that_add_up_to_its_accuracy_changes_and_resume_keeps_them(tmp_path, no_report):
    cfg = config(tmp_path, strategies=("naive", "replay"))
    whole = run_experiment(cfg, out=tmp_path / "whole", progress=False)
    for record in whole.records:
        flips = record.flips
        assert flips is not None and not np.isnan(flips[1:]).any()
        # PFR − NFR is the accuracy change of the update, task by task
        change = (flips[1:, :, 1] - flips[1:, :, 0]) / flips[1:, :, 3]
        assert change == pytest.approx(np.diff(record.scores, axis=0), abs=1e-6)  # scores are float32 sums
        assert whole.metrics["per_seed"][record.strategy][0]["nfr"] == pytest.approx(METRICS["nfr"](flips))
    assert whole.metrics["per_seed"]["naive"][0]["nfr"] > 0  # class-incremental fine-tuning forgets examples
    interrupted(cfg, tmp_path / "cut", StopAt("replay", 1, hook="on_eval"))
    resume_experiment(tmp_path / "cut", progress=False)
    lines = [[line for line in (tmp_path / name / LOG_NAME).read_text().splitlines() if '"correct"' in line]
             for name in ("cut", "whole")]
    assert len(lines[0]) == 2 * 4 and lines[0] == lines[1]
    cut = read_flips(tmp_path / "cut" / LOG_NAME)
    assert all(np.array_equal(cut[(r.strategy, r.seed)], r.flips, equal_nan=True) for r in whole.records)


def test_a_row_line_stores_tasks_and_sizes_as_runs():
    row = RowCorrectness.of(1, [0, 1, 2, 5, 6], [3, 3, 3, 2, 3], [True] * 14)
    line = row.line("naive", 0)
    assert line["tasks"] == [[0, 3], [5, 2]] and line["sizes"] == [[3, 3], [2, 1], [3, 1]]
    assert RowCorrectness.from_line(line) == row


def test_damaged_correctness_is_a_note_in_the_report_not_a_crash(tmp_path):
    from lifelong.report import write_report
    from tests.unit.run_folders import keeps, write_run

    run = write_run(tmp_path / "run", {"naive": [keeps(2)]})
    start = {"line": "record", "strategy": "naive", "seed": 0, "task_names": ["T1", "T2"], "kind": "classification",
             "steps": None}
    bad = {**RowCorrectness.of(0, [0, 1], [2, 2], [1, 0, 1, 1]).line("naive", 0), "bits": "not base64!"}
    (run / LOG_NAME).write_text(json.dumps(start) + "\n" + json.dumps(bad) + "\n")
    write_run(tmp_path / "run", {"naive": [keeps(2)]})  # tables newer than the log: not rebuilt from it
    result = write_report(run)
    assert any(note.startswith("prediction flips cannot be read") for note in result.notes)
    assert "## Prediction flips" not in (run / "report.md").read_text()
