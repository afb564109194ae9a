"""Figures and task blocks: unevaluated values stay missing (never drawn as 0), and long lifetimes are
grouped into blocks whose values are worked out by hand here."""

import math

import numpy as np

from lifelong.report import figures
from lifelong.report.coarsen import TaskBlocks, curve_tasks

nan = math.nan


def test_block_means_skip_unevaluated_cells_by_hand():
    R = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],  # before training: kept as its own row
                  [0.9, nan, 0.1, 0.1, 0.1],
                  [0.7, 0.8, 0.2, nan, 0.2],
                  [0.5, 0.6, 0.9, 0.3, nan],
                  [nan, nan, nan, nan, nan],
                  [0.4, 0.4, 0.8, 0.6, 1.0]])
    blocks = TaskBlocks(5, 2)  # tasks {1, 2}, {3, 4}, {5}
    assert blocks.labels() == ["1–2", "3–4", "5"] and blocks.coarse
    expected = np.array([[0.15, 0.35, 0.5],
                         [(0.9 + 0.7 + 0.8) / 3, (0.1 + 0.1 + 0.2) / 3, 0.15],  # rows 1-2
                         [0.55, 0.6, nan],  # rows 3-4: row 4 never evaluated, task 5 neither
                         [0.4, 0.7, 1.0]])  # row 5 alone
    np.testing.assert_allclose(blocks.matrix(R), expected)
    assert "grouped into 3 blocks of 2 consecutive tasks" in blocks.describe()
    assert TaskBlocks.for_tasks(60).size == 1 and TaskBlocks.for_tasks(61).size == 2
    assert TaskBlocks.for_tasks(1000).size == 20 and len(TaskBlocks.for_tasks(1000).starts) == 50
    assert list(curve_tasks(5)) == [0, 1, 2, 3, 4] and len(curve_tasks(1000)) == 20


def test_a_missing_per_task_value_draws_no_bar_instead_of_zero():
    aggs = [{"mean": nan, "ci95_high": nan}, {"mean": 0.2, "ci95_high": 0.3}, {"mean": -0.1, "ci95_high": 0.0}]
    fig = figures.per_task_bars([("fwt", {"naive": aggs}, {"naive": [False, True, False]})])
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert math.isnan(heights[0]) and heights[1:] == [0.2, -0.1]


def test_block_bars_show_block_means_with_their_range():
    aggs = [{"mean": v, "ci95_high": nan} for v in (0.1, 0.3, nan, 0.5)]
    fig = figures.per_task_bars([("f", {"a": aggs}, {"a": [False, False, False, True]})], TaskBlocks(4, 2))
    ax = fig.axes[0]
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], [0.2, 0.5])
    # whiskers from the lowest to the highest task mean of each block: 0.1..0.3, and 0.5 alone
    segments = ax.containers[0].lines[2][0].get_segments()  # the ErrorbarContainer's vertical lines
    np.testing.assert_allclose([seg[:, 1] for seg in segments], [[0.1, 0.3], [0.5, 0.5]])
    flagged = [line for line in ax.lines if line.get_marker() == "v"]  # task 4 flagged: over block 2 only
    assert len(flagged) == 1 and list(flagged[0].get_xdata()) == [1.0]
