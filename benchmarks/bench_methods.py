"""Issue 11's speed table: each continual-learning method in the engine against its bare PyTorch loop
and against the engine's plain fine-tuning, on the Split Fashion-MNIST stream of bench_core.py.

    python benchmarks/bench_methods.py                                        # the real figures
    python benchmarks/bench_methods.py --train-per-task 300 --test-per-task 100 --reps 1   # a quick check

Stream: split Fashion-MNIST, 5 tasks x 2 classes (class-incremental; `hnet` gets the same tasks with
their task labels, task-incremental, since it needs them; `generative_replay_gan` is `generative_replay`
with `generator: gan`), MLP 784-256-256-10, SGD lr 0.01, batch 32, one epoch per task (the settings
of bench_core.py / bench_overhead.py, built the same way).
Per method: `engine s` = the training seconds the engine records for the lifetime (`play`'s
per-task `learn` wall time, evaluations excluded), `bare s` = the wall time of the method's bare
loop (`BARE` of benchmarks/bare_classic.py, bare_cmeta.py and bare_gen.py: the same algorithm with
the same defaults in plain torch, training only) on the same tasks and initial weights. Ratios are
taken per round and their median [min-max] reported; `engine-naive` is timed in every round.
Goals (issue 11): engine/bare <= 1.3 for regularisation and replay methods; engine/naive <= 3 for
every method except GEM. A method whose bare loop or engine class is missing is listed as such.
Timings on a machine shared with other jobs are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import BATCH, DATA, HIDDEN, LR, N_TASKS, SEED  # noqa: E402  (the benchmark's settings)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = ["ewc", "replay", "si", "lwf", "agem", "gem", "der", "icarl", "oml", "anml", "mer", "lamaml", "ftml",
           "hnet", "generative_replay", "generative_replay_gan"]
VARIANTS = {"generative_replay_gan": ("generative_replay", {"generator": "gan"})}  # (strategy, its params)
ENGINE_NAMES = {"hnet": "lifelong.strategies.hnet:HNet",  # found before the package is reinstalled
                "generative_replay": "lifelong.strategies.generative_replay:GenerativeReplay"}
BARE_MODULES = ("bare_classic", "bare_cmeta", "bare_gen")
REGULARISATION_OR_REPLAY = {"ewc", "replay", "si", "lwf", "agem", "gem", "der", "icarl", "generative_replay",
                            "generative_replay_gan"}
TASK_IL = {"hnet"}


def bare_loops() -> dict:
    """Every BARE dict found (a module not written yet is skipped)."""
    loops = {}
    for name in BARE_MODULES:
        try:
            loops.update(importlib.import_module(name).BARE)
        except ImportError:
            print(f"  ({name}.py not found: its methods have no bare loop)", file=sys.stderr)
    return loops


def build(scenario: str, train_per_task: int, test_per_task: int):
    """The stream and a context factory, from the engine's own builders (as bench_overhead.build)."""
    import torch
    from lifelong.models import ModelSpec
    from lifelong.strategies.base import StrategyContext
    from lifelong.streams.builders import build_stream
    from lifelong.streams.spec import SplitSpec
    from lifelong.training import TrainingSpec

    stream = build_stream(SplitSpec(name=f"split_fashion_mnist_{scenario}", builder="split", dataset="fashion_mnist",
                                    data_root=str(DATA), scenario=scenario, n_tasks=N_TASKS, classes_per_task=2,
                                    seed=SEED, train_per_task=train_per_task, test_per_task=test_per_task))

    def context():
        return StrategyContext(stream, ModelSpec(hidden=HIDDEN), TrainingSpec(batch_size=BATCH, lr=LR),
                               torch.device("cpu"), SEED)
    return stream, context


def engine_class(method: str):
    from lifelong.strategies.registry import UnknownStrategyError, strategy_class
    name = VARIANTS.get(method, (method,))[0]
    try:
        return strategy_class(ENGINE_NAMES.get(name, name))
    except UnknownStrategyError:
        return None


def time_engine(cls, stream, context, params: dict | None = None) -> float:
    from lifelong.orchestrator import play
    strategy, ctx = cls(params), context()
    strategy.setup(ctx)
    return float(play(strategy, ctx, "bench").train_seconds.sum())


def time_bare(fn, stream, context) -> float:
    tasks = [(t.x_train, t.y_train, t.x_test, t.y_test) for t in stream.tasks]
    model = context().new_model()
    started = time.perf_counter()
    fn(tasks, model, LR, BATCH, SEED)
    return time.perf_counter() - started


def render(rows: dict, notes: list[str], header: str) -> str:
    med = statistics.median

    def ratio(values):
        return f"{med(values):.2f} [{min(values):.2f}-{max(values):.2f}]" if values else "n/a"

    lines = [header, "", "| method | engine s | bare s | engine / bare | goal | engine / naive | goal |",
             "|---|---:|---:|---:|---|---:|---|"]
    for method, r in rows.items():
        eb = [e / b for e, b in zip(r["engine"], r["bare"])]
        en = [e / n for e, n in zip(r["engine"], r["naive"])]
        goal_b = 1.3 if method in REGULARISATION_OR_REPLAY else None
        goal_n = None if method == "gem" else 3.0
        verdict_b = "" if goal_b is None or not eb else f"<= {goal_b}: {'met' if med(eb) <= goal_b else 'missed'}"
        verdict_n = "(GEM: reported)" if goal_n is None else \
            f"<= {goal_n:g}: {'met' if med(en) <= goal_n else 'missed'}" if en else ""
        bare_s = f"{med(r['bare']):.2f}" if r["bare"] else "no bare loop"
        lines.append(f"| {method}{' (task-IL)' if method in TASK_IL else ''} | {med(r['engine']):.2f} | {bare_s} | "
                     f"{ratio(eb)} | {verdict_b} | {ratio(en)} | {verdict_n} |")
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-per-task", type=int, default=12000, help="training examples per task (max 12000)")
    parser.add_argument("--test-per-task", type=int, default=2000, help="test examples per task (max 2000)")
    parser.add_argument("--reps", type=int, default=3, help="measured rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    streams = {s: build(s, args.train_per_task, args.test_per_task) for s in ("class-il", "task-il")}
    bare, naive_cls = bare_loops(), engine_class("naive")
    notes, methods = [], []
    for method in args.methods:
        if engine_class(method) is None:
            notes.append(f"{method}: not in this engine (not merged or not registered): skipped")
        else:
            methods.append(method)
    rows = {m: {"engine": [], "bare": [], "naive": []} for m in methods}
    load = [os.getloadavg()[0]]
    for round_ in range(args.reps + 1):
        naive = {s: time_engine(naive_cls, *streams[s]) for s in streams}
        for method in methods:
            stream, context = streams["task-il" if method in TASK_IL else "class-il"]
            engine = time_engine(engine_class(method), stream, context, VARIANTS.get(method, (None, None))[1])
            bare_s = time_bare(bare[method], stream, context) if method in bare else None
            print(f"  round {round_}{' (warm-up)' if not round_ else ''} {method:18s} engine {engine:.2f} s"
                  + (f", bare {bare_s:.2f} s" if bare_s is not None else ""), file=sys.stderr, flush=True)
            if round_:
                rows[method]["engine"].append(engine)
                rows[method]["naive"].append(naive["task-il" if method in TASK_IL else "class-il"])
                if bare_s is not None:
                    rows[method]["bare"].append(bare_s)
    load.append(os.getloadavg()[0])
    tasks = streams["class-il"][0].tasks
    header = (f"split Fashion-MNIST {N_TASKS} x 2 classes, {len(tasks[0].x_train)} training examples per task, "
              f"MLP 784-{'-'.join(map(str, HIDDEN))}-10, SGD lr {LR}, batch {BATCH}, 1 epoch; torch threads "
              f"{args.threads}; {args.reps} rounds after a warm-up; training seconds, median [min-max] of per-round "
              f"ratios; 1-min load {load[0]:.1f} -> {load[1]:.1f}" + (" (shared machine: noisy)" if max(load) > 1.5
                                                                      else ""))
    print(render(rows, notes, header))


if __name__ == "__main__":
    main()
