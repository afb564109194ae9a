"""Optional TensorBoard logging (`tensorboard: true`, the `tensorboard` extra): every task's score
after every step of the lifetime as scalars, and the score matrix as an image when a lifetime ends.
tensorboard is imported only when this callback is built."""

from __future__ import annotations

from pathlib import Path

from lifelong.callbacks import Callback
from lifelong.evaluation.record import LifetimeRecord
from lifelong.report.figures import heatmaps
from lifelong.run_folder import safe_name


class TensorBoardLogger(Callback):
    """One event folder per (strategy, seed) under `log_dir`; the x axis counts the tasks trained."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ValueError("tensorboard: true needs the tensorboard package: pip install 'lifelong[tensorboard]' "
                             "(or run without --tensorboard)") from error
        self.log_dir, self._new_writer, self.writers = Path(log_dir), SummaryWriter, {}

    def _writer(self, record: LifetimeRecord):
        key = (record.strategy, record.seed)
        if key not in self.writers:
            name = f"{safe_name(record.strategy, 'strategy label')}-seed{record.seed}"
            self.writers[key] = self._new_writer(str(self.log_dir / name))
        return self.writers[key]

    def on_eval(self, after_task: int, record: LifetimeRecord) -> None:
        writer, row = self._writer(record), record.scores[after_task]
        for j, value in enumerate(row):
            writer.add_scalar(f"{record.score_name}/task{j + 1:03d}", value, after_task)
        if after_task:
            writer.add_scalar(f"{record.score_name}/mean_seen", row[:after_task].mean(), after_task)

    def on_run_end(self, record: LifetimeRecord) -> None:
        writer = self._writer(record)
        writer.add_figure("score_matrix", heatmaps({record.strategy: record.scores}, record.score_name),
                          record.completed)
        writer.close()

    def on_exception(self, error: BaseException, record: LifetimeRecord) -> None:
        self._writer(record).close()
