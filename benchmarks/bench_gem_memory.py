"""Peak memory of GEM and A-GEM as the number of tasks grows (they keep a memory, and GEM a gradient,
per task): one subprocess per (strategy, number of tasks), its max RSS.

    python benchmarks/bench_gem_memory.py                                  # the real figures: 5, 20, 100 tasks
    python benchmarks/bench_gem_memory.py --tasks 2 5 --train-per-task 20 --test-per-task 10   # a quick check

Stream: permuted digits (scikit-learn's 8x8 digits, bundled: nothing to download), `--train-per-task`
training and `--test-per-task` test examples per task, MLP 64-100-100-10, SGD lr 0.1, batch 10, one
epoch (the GEM protocol's learner on a small stream). Each point runs the engine's `play` (training and
the evaluation schedule, every `--eval-every` tasks; no run folder) in a fresh interpreter, and reports
the process's max RSS at the end and the baseline before training (imports and data), so the growth
is what the lifetime added. `naive` is the reference with no memory. GEM keeps 256 examples per
task (its default), or all of a smaller task's. Strategies the engine lacks are reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "@@GEMMEM@@"
GEM_MEMORY = 256  # GEM's memory per task (its default), capped at the task's training examples


def child(strategy: str, n_tasks: int, train: int, test: int, every: int) -> dict:
    sys.path.insert(0, str(REPO))
    import torch
    from lifelong.evaluation.fewshot import EvaluationSpec
    from lifelong.models import ModelSpec
    from lifelong.orchestrator import play
    from lifelong.strategies.base import StrategyContext
    from lifelong.strategies.registry import UnknownStrategyError, strategy_class
    from lifelong.streams.builders import build_stream
    from lifelong.streams.spec import PermutedSpec
    from lifelong.training import TrainingSpec

    torch.set_num_threads(1)
    try:
        cls = strategy_class(strategy)
    except UnknownStrategyError:
        return {"error": "not in this engine"}
    stream = build_stream(PermutedSpec(name="permuted_digits", builder="permuted", dataset="digits", n_tasks=n_tasks,
                                       train_per_task=train, test_per_task=test))
    ctx = StrategyContext(stream, ModelSpec(hidden=[100, 100]), TrainingSpec(epochs=1, batch_size=10, lr=0.1),
                          torch.device("cpu"), 0, EvaluationSpec(every=every))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    strategy_ = cls({"memory_per_task": min(GEM_MEMORY, train)} if strategy == "gem" else {})
    strategy_.setup(ctx)
    started = time.perf_counter()
    record = play(strategy_, ctx, strategy)
    return {"baseline_mb": baseline, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - started, "train_seconds": float(record.train_seconds.sum())}


def measure(strategy: str, n_tasks: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", strategy, "--tasks", str(n_tasks), "--train-per-task",
           str(args.train_per_task), "--test-per-task", str(args.test_per_task), "--eval-every", str(args.eval_every)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((l for l in done.stdout.splitlines() if l.startswith(MARK)), None)
    if line is None:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:120]}
    return json.loads(line[len(MARK):])


def render(results: dict, args) -> str:
    lines = [f"permuted digits, {args.train_per_task} training / {args.test_per_task} test examples per task, "
             f"MLP 64-100-100-10, batch 10, 1 epoch, evaluated every {args.eval_every} task(s); one process per "
             "point, max RSS in MB", "",
             "| strategy | " + " | ".join(f"{n} tasks: max RSS (growth)" for n in args.tasks) + " |",
             "|---|" + "---:|" * len(args.tasks)]
    for strategy, points in results.items():
        cells = [p["error"] if "error" in p else f"{p['max_rss_mb']:.0f} (+{p['max_rss_mb'] - p['baseline_mb']:.0f})"
                 for p in points]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[5, 20, 100])
    parser.add_argument("--strategies", nargs="+", default=["naive", "agem", "gem"])
    parser.add_argument("--train-per-task", type=int, default=200)
    parser.add_argument("--test-per-task", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate after every k-th task")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.tasks[0], args.train_per_task, args.test_per_task, args.eval_every)
        print(MARK + json.dumps(result), flush=True)
        return
    results = {}
    for strategy in args.strategies:
        results[strategy] = []
        for n in args.tasks:
            results[strategy].append(measure(strategy, n, args))
            print(f"  {strategy} {n} tasks: {results[strategy][-1]}", file=sys.stderr, flush=True)
    print(render(results, args))


if __name__ == "__main__":
    main()
