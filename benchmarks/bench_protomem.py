"""Prototype-memory quality benchmark: class-incremental Fashion-MNIST in two segments.

    python benchmarks/bench_protomem.py                   # seeds 0 1 2, 300 episodes per task
    python benchmarks/bench_protomem.py --seeds 0 --episodes 100 --threads 1

Stream: Fashion-MNIST through `lifelong.streams` (split builder, `classes_per_task: [6, 4]`,
`n_tasks: 2`, class-IL: no task label), full training and test sets (36000 + 24000 training,
6000 + 4000 test images). Every method classifies among every class it has seen; the score is
accuracy on the union of both test sets after the second segment (all 10 classes), beside the
accuracy on the first segment's test set after segment 1 (6 classes), and on the old 6 and the new
4 classes after segment 2.

Methods, each run through the engine's `play` (the same evaluator as `lifelong run`) except the
bare baseline:
* `raw-pixel NCM (bare torch)`: nearest class mean in pixel space, written here in plain torch,
  importing nothing from lifelong's strategies: the reference the others must beat.
* `protomem, raw pixels`: protomem with an MLP of `hidden: []` (its embedding is the flattened
  image); must equal the bare baseline, a check of the engine path.
* `protomem, random embedding`: meta_train false, MLP 784-256-256 at its random initialisation.
* `protomem, meta-trained (compensate)`: prototypical-loss meta-training on each segment
  (`--episodes` episodes, all classes of the segment per episode, 5 shots, 15 queries, Adam 1e-3),
  drift compensation from 200 exemplars.
* `protomem, meta-trained (freeze)`: the same, old prototypes kept as computed.
* `... (recompute, oracle)`: the compensated run's final embedding with every prototype recomputed
  from all training data of its class: what perfect drift handling would give with that embedding.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from lifelong.evaluation.fewshot import EvaluationSpec
from lifelong.models import ModelSpec
from lifelong.orchestrator import play
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.episodes import class_means, embed
from lifelong.strategies.protomem import PrototypeMemory
from lifelong.streams.builders import build_stream
from lifelong.streams.spec import SplitSpec
from lifelong.training import TrainingSpec

HIDDEN = [256, 256]


def fmnist_6_4():
    spec = SplitSpec(name="fmnist_6_4", builder="split", dataset="fashion_mnist", scenario="class-il",
                     n_tasks=2, classes_per_task=[6, 4])
    return build_stream(spec)


def summary(scores, sizes) -> dict:
    """scores: (3, 2) record rows (before, after T1, after T2)."""
    n1, n2 = sizes
    return {"seg1": scores[1][0], "old6": scores[2][0], "new4": scores[2][1],
            "all10": (n1 * scores[2][0] + n2 * scores[2][1]) / (n1 + n2)}


def bare_ncm(stream) -> tuple[list[list[float]], float]:
    """Nearest class mean on raw pixels, plain torch: class means grow segment by segment."""
    started = time.perf_counter()
    sums = torch.zeros(stream.n_outputs, 784)
    counts = torch.zeros(stream.n_outputs)
    rows = []
    for task in stream.tasks:
        x = task.x_train.flatten(1)
        sums.index_add_(0, task.y_train, x)
        counts += torch.bincount(task.y_train, minlength=stream.n_outputs)
        means = sums / counts.clamp_min(1)[:, None]
        row = []
        for t in stream.tasks:
            d = torch.cdist(t.x_test.flatten(1), means) ** 2
            d[:, counts == 0] = float("inf")
            row.append(float((d.argmin(1) == t.y_test).float().mean()))
        rows.append(row)
    return [[float("nan")] * 2, *rows], time.perf_counter() - started


def run_protomem(stream, seed: int, params: dict, hidden) -> tuple:
    ctx = StrategyContext(stream, ModelSpec(hidden=hidden), TrainingSpec(), torch.device("cpu"), seed, EvaluationSpec())
    strategy = PrototypeMemory(params)
    strategy.setup(ctx)
    started = time.perf_counter()
    record = play(strategy, ctx, "protomem")
    return record, strategy, time.perf_counter() - started


@torch.no_grad()
def oracle_recompute(strategy, stream) -> list[float]:
    """Final embedding, every class mean recomputed from all its training data; per-task accuracy."""
    x = torch.cat([t.x_train for t in stream.tasks])
    y = torch.cat([t.y_train for t in stream.tasks])
    means, _ = class_means(embed(strategy.net["embed"], x), y, stream.n_outputs)
    out = []
    for t in stream.tasks:
        z = embed(strategy.net["embed"], t.x_test)
        out.append(float((torch.cdist(z, means).argmin(1) == t.y_test).float().mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    stream = fmnist_6_4()
    sizes = [len(t.y_test) for t in stream.tasks]
    print(f"stream {stream.name}: tasks {[t.name for t in stream.tasks]}, "
          f"train {[len(t.y_train) for t in stream.tasks]}, test {sizes}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    meta = {"meta_train": True, "episodes": args.episodes, "shots": 5, "queries": 15, "lr": 1e-3}
    methods = {
        "raw-pixel NCM (bare torch)": None,
        "protomem, raw pixels": ({}, []),
        "protomem, random embedding": ({}, HIDDEN),
        "protomem, meta-trained (compensate)": ({**meta, "drift": "compensate", "exemplars": 200}, HIDDEN),
        "protomem, meta-trained (freeze)": ({**meta, "drift": "freeze"}, HIDDEN),
    }
    results: dict[str, list[dict]] = {name: [] for name in [*methods, "protomem, meta-trained (recompute, oracle)"]}
    for seed in args.seeds:
        for name, setting in methods.items():
            if setting is None:
                rows, seconds = bare_ncm(stream)
                results[name].append({**summary(rows, sizes), "seconds": seconds})
                continue
            record, strategy, seconds = run_protomem(stream, seed, *setting)
            stats = record.train_stats
            results[name].append({**summary(record.scores.tolist(), sizes), "seconds": seconds,
                                  "drift": stats[-1].get("drift")})
            if "compensate" in name:
                accs = oracle_recompute(strategy, stream)
                n1, n2 = sizes
                results["protomem, meta-trained (recompute, oracle)"].append(
                    {"seg1": float("nan"), "old6": accs[0], "new4": accs[1],
                     "all10": (n1 * accs[0] + n2 * accs[1]) / (n1 + n2), "seconds": float("nan")})
        print(f"seed {seed} done", flush=True)

    def cell(values, key):
        v = [r[key] for r in values if r.get(key) is not None and r[key] == r[key]]
        if not v:
            return "—"
        return f"{statistics.mean(v):.4f}" + (f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else "")

    print(f"\nFashion-MNIST 6+4 class-incremental, seeds {args.seeds} (mean ± sample std), "
          f"{args.episodes} episodes/task\n")
    print("| method | acc all 10 (after seg 2) | acc first 6 after seg 1 | old 6 after seg 2 | new 4 after seg 2 "
          "| seconds (learn+eval) |")
    print("|---|---|---|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {cell(values, 'all10')} | {cell(values, 'seg1')} | {cell(values, 'old6')} | "
              f"{cell(values, 'new4')} | {cell(values, 'seconds')} |")
    drift = [r["drift"] for r in results["protomem, meta-trained (compensate)"]]
    print(f"\nmean prototype shift applied by drift compensation after segment 2 (embedding units): {drift}")


if __name__ == "__main__":
    main()
