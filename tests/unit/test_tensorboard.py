"""TensorBoard logging is optional: scalars per task and the score matrix when tensorboard is there,
a clear message when it is not."""

import sys

import numpy as np
import pytest

from lifelong.evaluation.record import LifetimeRecord


def lifetime() -> LifetimeRecord:
    scores = np.array([[0.1, 0.2], [0.9, 0.3], [0.5, 0.8]])
    return LifetimeRecord("naive", 0, ["T1", "T2"], "classification", scores)


def test_scalars_and_matrix_image(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lifelong.tensorboard_log import TensorBoardLogger

    record, logger = lifetime(), TensorBoardLogger(tmp_path)
    for row in range(3):
        logger.on_eval(row, record)
    logger.on_run_end(record)
    events = EventAccumulator(str(tmp_path / "naive-seed0")).Reload()
    assert [e.value for e in events.Scalars("accuracy/task001")] == pytest.approx([0.1, 0.9, 0.5])
    assert [e.step for e in events.Scalars("accuracy/mean_seen")] == [1, 2]
    assert events.Scalars("accuracy/mean_seen")[-1].value == pytest.approx(0.65)  # (0.5 + 0.8) / 2
    assert events.Tags()["images"] == ["score_matrix"]


def test_without_tensorboard_the_message_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    from lifelong.tensorboard_log import TensorBoardLogger

    with pytest.raises(ValueError, match=r"lifelong\[tensorboard\]"):
        TensorBoardLogger(tmp_path)
