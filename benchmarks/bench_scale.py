"""Long lifetimes: how wall time, bookkeeping, evaluation and memory grow with the number of tasks.

    python benchmarks/bench_scale.py --tasks 10,100          # what a quick check runs
    python benchmarks/bench_scale.py --tasks 10,100,1000     # the issue's measure (T = 1000: minutes)
    python benchmarks/bench_scale.py --tasks 10 --json out.json

Each T runs in its own subprocess (so peak RSS is per T), pinned to `--threads` torch threads:
permuted 8x8 digits with `test_per_task: 100` (all 1347 training images per task), naive, MLP
64-256-256-10, 1 epoch, every task evaluated after every task (the full matrix), references off,
through `lifelong.run.run_experiment` (progress off, run folder in a temporary folder).

Reported per T:
- wall: the whole `run_experiment` (stream, training, evaluation, writes, metrics, report);
- per task: wall / T;
- bookkeeping: time in the run's hooks (every `on_eval` and `on_task_end` of every callback but
  the timer itself: record log lines and checkpoints) plus the record tables written at the end
  (record.csv/.parquet, timings.csv), share of wall;
- evaluation: time in the row evaluations (`evaluate_test_set`), share of wall;
- stream RSS: peak RSS of a separate process that builds the stream and iterates every task
  (lazy streams: it should not grow with T); run RSS: peak RSS of the run's process;
- files: sizes of the run folder's record files and checkpoints at the end;
- row / bare: one row's evaluation against the floor, a bare batched forward pass of the same
  model over the same examples (same batch size), median of `--reps` interleaved timings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import accumulated  # benchmarks/timing.py (the script's folder is on the path)

REPO = Path(__file__).resolve().parents[1]
MARK = "@@BENCH@@"


def config(n_tasks: int, out: Path, threads: int) -> dict:
    return {"name": f"scale-{n_tasks}", "out": str(out), "threads": threads, "device": "cpu",
            "stream": {"name": f"permuted_digits_{n_tasks}", "builder": "permuted", "dataset": "digits",
                       "n_tasks": n_tasks, "test_per_task": 100, "first_identity": True},
            "model": {"hidden": [256, 256]}, "training": {"epochs": 1},
            "strategies": [{"name": "naive"}], "references": {"enabled": False}}


def child_stream(n_tasks: int, threads: int) -> dict:
    """Peak RSS of building the stream and iterating all its tasks (the evaluated test sets included)."""
    import torch

    from lifelong.config import ExperimentConfig
    from lifelong.evaluation.evaluator import test_set_of
    from lifelong.streams.builders import build_stream

    torch.set_num_threads(threads)
    spec = ExperimentConfig.model_validate(config(n_tasks, Path(tempfile.gettempdir()), threads)).stream
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stream = build_stream(spec)
    for task in stream.tasks:
        task.x_train.sum()
    test_set_of(stream, tuple(range(len(stream))), torch.device("cpu"))
    return {"stream_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_stream_mb": before}


def child_run(n_tasks: int, threads: int, reps: int) -> dict:
    import torch

    import lifelong.orchestrator as orchestrator
    import lifelong.run as run
    from lifelong.callbacks import Callback
    from lifelong.config import ExperimentConfig
    from lifelong.evaluation.evaluator import EVAL_BATCH, evaluate_test_set, test_set_of
    from lifelong.run_folder import RunFolder

    spent = {"bookkeeping": 0.0, "evaluation": 0.0}

    def timed(kind, function):
        return accumulated(function, spent, kind)

    class Timed(Callback):
        """A hook whose `on_eval` and `on_task_end` count as bookkeeping."""

        def __init__(self, hook):
            self.hook = hook
            for name in ("on_run_start", "on_task_start", "on_run_end", "on_exception"):
                setattr(self, name, getattr(hook, name))
            self.on_eval = timed("bookkeeping", hook.on_eval)
            self.on_task_end = timed("bookkeeping", hook.on_task_end)

    play = orchestrator.play
    run.play = lambda strategy, ctx, label, callbacks=(), record=None, cost="basic": play(
        strategy, ctx, label, [Timed(cb) for cb in callbacks], record, cost)
    orchestrator.evaluate_test_set = timed("evaluation", evaluate_test_set)
    RunFolder.write_tables = timed("bookkeeping", RunFolder.write_tables)  # record.csv/.parquet at the end

    with tempfile.TemporaryDirectory() as tmp:
        experiment = ExperimentConfig.model_validate(config(n_tasks, Path(tmp) / "runs", threads))
        started = time.perf_counter()
        result = run.run_experiment(experiment, out=Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - started
        folder = Path(tmp) / "run"
        files = {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        row, bare = row_against_bare_forward(result, experiment, reps, torch, test_set_of, evaluate_test_set,
                                             EVAL_BATCH)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "per_task_s": wall / n_tasks, **{f"{k}_s": v for k, v in spent.items()},
            "run_rss_mb": rss, "files": files, "row_s": row, "bare_forward_s": bare}


def row_against_bare_forward(result, experiment, reps, torch, test_set_of, evaluate_test_set, batch):
    """Median seconds of one row's evaluation and of a bare forward pass over the same examples."""
    from lifelong.strategies.base import StrategyContext
    from lifelong.strategies.naive import Naive
    from lifelong.streams.builders import build_stream

    stream = build_stream(experiment.stream)
    strategy = Naive()
    strategy.setup(StrategyContext(stream, experiment.model, experiment.training, torch.device("cpu"), 0))
    test_set = test_set_of(stream, tuple(range(len(stream))), torch.device("cpu"))
    model = strategy.model.eval()

    @torch.no_grad()
    def bare():
        for start in range(0, len(test_set.x), batch):
            model(test_set.x[start:start + batch])

    rows, bares = [], []
    for _ in range(reps):
        for times, call in ((rows, lambda: evaluate_test_set(strategy, test_set)), (bares, bare)):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    return statistics.median(rows), statistics.median(bares)


def measure(n_tasks: int, threads: int, reps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    found = {"tasks": n_tasks}
    for mode in ("stream", "run"):
        done = subprocess.run([sys.executable, __file__, "--child", mode, "--tasks", str(n_tasks), "--threads",
                               str(threads), "--reps", str(reps)], capture_output=True, text=True, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode or not lines:
            raise RuntimeError(f"T={n_tasks} {mode}: exit {done.returncode}\n{done.stderr[-3000:]}")
        found.update(json.loads(lines[-1][len(MARK):]))
    return found


def render(results: list[dict]) -> str:
    head = ("| T | wall s | s/task | bookkeeping | evaluation | stream RSS MB | run RSS MB | record files MB | "
            "checkpoints MB | row / bare forward |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        record = sum(size for name, size in r["files"].items() if name.startswith("record")) / 1e6
        checkpoints = sum(size for name, size in r["files"].items() if name.startswith("checkpoints")) / 1e6
        lines.append(f"| {r['tasks']} | {r['wall_s']:.1f} | {r['per_task_s']:.3f} | "
                     f"{r['bookkeeping_s'] / r['wall_s']:.0%} | {r['evaluation_s'] / r['wall_s']:.0%} | "
                     f"{r['stream_rss_mb']:.0f} | {r['run_rss_mb']:.0f} | {record:.2f} | {checkpoints:.2f} | "
                     f"{r['row_s'] * 1e3:.1f} ms / {r['bare_forward_s'] * 1e3:.1f} ms = "
                     f"{r['row_s'] / r['bare_forward_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="10,100", help="comma-separated T values")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=7, help="timings of a row and of the bare forward pass")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--child", choices=("stream", "run"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n_tasks = int(args.tasks)
        found = child_stream(n_tasks, args.threads) if args.child == "stream" else \
            child_run(n_tasks, args.threads, args.reps)
        print(MARK + json.dumps(found))
        return
    results = []
    for n_tasks in (int(t) for t in args.tasks.split(",")):
        results.append(measure(n_tasks, args.threads, args.reps))
        print(f"T={n_tasks}: {results[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
