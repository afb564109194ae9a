"""What a stream needs resident, estimated from its spec before anything is built.

Tasks are built when the run reaches them and released after (`lifelong.streams.task.Tasks`),
so what stays is the dataset the stream is cut from, the test splits of the evaluated tasks
(kept for the whole run so that a row of the record is a few large forward passes), and the few
tasks being worked on. What a strategy keeps (a replay buffer, a model per task) comes on top.
`check_fits` refuses, at validation, a stream whose estimate exceeds the memory available.
"""

from __future__ import annotations

from pathlib import Path

from lifelong.streams.registry import SourceSize, SourceSpec, StreamSpecBase, TaskFootprint
from lifelong.streams.sources import DataError, find_idx_files, idx_shape

FLOAT, LABEL = 4, 8
KNOWN_SOURCES = {  # train and test examples, classes, bytes per example
    "digits": SourceSize(1347, 450, 10, 64 * FLOAT + LABEL),
    "fashion_mnist": SourceSize(60_000, 10_000, 10, 784 * FLOAT + LABEL),
    "mnist1d": SourceSize(4000, 1000, 10, 40 * FLOAT + LABEL),
}
RESIDENT_TASKS = 3  # the task being learned and the last ones built, which `Tasks` keeps
HEADROOM = 0.8  # refuse streams that would take more than this share of the available memory


def source_size(spec: StreamSpecBase) -> SourceSize | None:
    """The size of the dataset the stream is cut from (None: generated, or files not found: the
    build will say so)."""
    if not isinstance(spec, SourceSpec):
        return None
    name = spec.dataset.strip().lower().replace("-", "_")
    if name in KNOWN_SOURCES:
        return KNOWN_SOURCES[name]
    if name != "idx" or spec.data_root is None:
        return None
    files, missing = find_idx_files(Path(spec.data_root))
    if missing:
        return None
    try:
        train, test = idx_shape(files["x_train"]), idx_shape(files["x_test"])
    except (OSError, DataError):
        return None
    features = 1
    for size in train[1:]:
        features *= size
    return SourceSize(train[0], test[0], 1, features * FLOAT + LABEL)  # classes unknown: whole dataset per task


def estimate_bytes(spec: StreamSpecBase, evaluated_tasks: int | None = None) -> int:
    """Bytes resident for the stream when `evaluated_tasks` tasks (default all) are evaluated."""
    source = source_size(spec)
    task = spec.task_footprint(source) or TaskFootprint(0, 0, 0)
    evaluated = spec.n_tasks if evaluated_tasks is None else evaluated_tasks
    dataset = (source.n_train + source.n_test) * source.row_bytes if source else 0
    return dataset + task.row_bytes * (evaluated * task.test_rows
                                       + min(RESIDENT_TASKS, spec.n_tasks) * (task.train_rows + task.test_rows))


def tasks_bytes(spec: StreamSpecBase) -> int | None:
    """Bytes of all the stream's tasks built at once (None: unknown)."""
    task = spec.task_footprint(source_size(spec))
    return None if task is None else spec.n_tasks * (task.train_rows + task.test_rows) * task.row_bytes


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(spec: StreamSpecBase, evaluated_tasks: int | None = None) -> None:
    """Raise ValueError, with the numbers and the fix, when the stream cannot fit in memory."""
    needed, available = estimate_bytes(spec, evaluated_tasks), available_bytes()
    if available is None or needed <= HEADROOM * available:
        return
    evaluated = spec.n_tasks if evaluated_tasks is None else evaluated_tasks
    test_rows = (spec.task_footprint(source_size(spec)) or TaskFootprint(0, 0, 0)).test_rows
    raise ValueError(
        f"stream {spec.name!r} needs about {needed / 1e9:.1f} GB resident ({evaluated} evaluated tasks x "
        f"{test_rows} test examples, plus the dataset), but this machine has {available / 1e9:.1f} GB available; "
        f"lower n_tasks (now {spec.n_tasks}) or test_per_task, or evaluate a fixed sample of the tasks "
        "(evaluation.tasks: sample(n))")
