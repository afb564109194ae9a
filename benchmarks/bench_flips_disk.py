"""Disk cost of the per-example correctness behind the prediction-flip metrics.

Runs `naive` on permuted digits (every task scored after every task, references off) and splits
record.rows.jsonl into its `correct` lines (bit-packed correctness, base64) and the rest.

    python benchmarks/bench_flips_disk.py --tasks 100 --test-per-task 100
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lifelong.config import ExperimentConfig
from lifelong.record_log import LOG_NAME
from lifelong.run import run_experiment


def measure(tasks: int, test_per_task: int) -> dict:
    config = ExperimentConfig.model_validate({
        "name": "flips-disk", "device": "cpu", "threads": 1, "references": {"enabled": False},
        "stream": {"name": "pd", "builder": "permuted", "dataset": "digits", "n_tasks": tasks,
                   "train_per_task": 200, "test_per_task": test_per_task},
        "model": {"type": "mlp", "hidden": [32]}, "training": {"epochs": 1, "batch_size": 32, "lr": 0.05},
        "strategies": [{"name": "naive"}]})
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(config, out=Path(tmp) / "run", progress=False)
        lines = (Path(tmp) / "run" / LOG_NAME).read_bytes().splitlines(keepends=True)
    correct = sum(len(line) for line in lines if b'"line": "correct"' in line)
    rows = sum(1 for line in lines if b'"line": "correct"' in line)
    examples = tasks * test_per_task * rows
    return {"tasks": tasks, "test_per_task": test_per_task, "rows": rows, "correct_bytes": correct,
            "rest_of_log_bytes": sum(map(len, lines)) - correct, "packed_bits_bytes": examples // 8,
            "bytes_per_example": correct / examples}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--test-per-task", type=int, default=100)
    args = parser.parse_args()
    for key, value in measure(args.tasks, args.test_per_task).items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
