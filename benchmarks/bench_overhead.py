"""Per-step overhead of the strategies: CPU time of the engine's play loop against a bare PyTorch loop.

    python benchmarks/bench_overhead.py                                   # the real figures (~2 min idle)
    python benchmarks/bench_overhead.py --train-per-task 600 --test-per-task 200 --reps 2   # a quick check

Split Fashion-MNIST, 5 tasks x 2 classes, class-incremental, MLP 784-256-256-10, SGD lr 0.01,
batch 32, 1 epoch per task; every task is evaluated on its test set before training and after
each task. Variants, all on the same task tensors and initial weights:

* `bare`: plain torch, the fine-tuning loop with the same batches and evaluations, nothing else;
* `bare-replay`: the same with 32 replayed examples per step from task 2 on (random examples of
  earlier tasks): what training on 64 examples per step costs, the floor for replay;
* `naive`, `replay` (buffer 200), `ewc` (lambda 100, separate, Fisher of 512 examples): the
  engine's `play` (training and evaluation, no run folder or callbacks).

One process, `--threads` torch threads (1: on a shared machine more threads mostly wait). A
warm-up round, then `--reps` rounds running every variant, the order rotated each round; ratios
are taken per round (variant CPU / bare CPU) and their median [min-max] reported, so slow phases
of the machine cancel. EWC's Fisher estimates and its penalty-gradient steps are timed inside its
run and given as shares of its CPU time. Timings on a machine shared with other jobs are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from timing import accumulated  # benchmarks/timing.py (the script's folder is on the path)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("LIFELONG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
SEED, N_TASKS, HIDDEN, LR, BATCH = 0, 5, [256, 256], 0.01, 32
PARAMS = {"naive": {}, "replay": {"buffer_size": 200},
          "ewc": {"lambda": 100.0, "mode": "separate", "fisher_samples": 512}}
GOALS = {"naive": 1.05, "replay": 1.3, "ewc": 1.6}
INNER = {"ewc": {"_fisher": "Fisher estimates", "add_penalty_grad": "penalty gradients"}}  # timed inside a run


def build(train_per_task: int, test_per_task: int):
    """The stream and a context factory, from the engine's own builders."""
    import torch
    from lifelong.models import ModelSpec
    from lifelong.strategies.base import StrategyContext
    from lifelong.streams.builders import build_stream
    from lifelong.streams.spec import SplitSpec
    from lifelong.training import TrainingSpec

    spec = SplitSpec(name="split_fashion_mnist", builder="split", dataset="fashion_mnist", data_root=str(DATA),
                     scenario="class-il", n_tasks=N_TASKS, classes_per_task=2, seed=SEED,
                     train_per_task=train_per_task, test_per_task=test_per_task)
    stream = build_stream(spec)

    def context():
        return StrategyContext(stream, ModelSpec(hidden=HIDDEN), TrainingSpec(batch_size=BATCH, lr=LR),
                               torch.device("cpu"), SEED)
    return stream, context


def bare_loop(model, tasks, shuffle_seeds, replay: bool) -> list[list[float]]:
    """Fine-tuning in plain torch; with `replay`, 32 extra examples of earlier tasks per step from task 2 on."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    draw = torch.Generator().manual_seed(SEED)

    @torch.no_grad()
    def evaluate():
        model.eval()
        row = []
        for task in tasks:
            out = model(task.x_test)
            row.append(torch.stack([(out.argmax(1) == task.y_test).float().mean(),
                                    F.cross_entropy(out, task.y_test)]))
        return torch.stack(row)[:, 0].tolist()

    scores = [evaluate()]
    for i, task in enumerate(tasks):
        model.train()
        x, y = task.x_train, task.y_train
        pool = (torch.cat([t.x_train[:200] for t in tasks[:i]]), torch.cat([t.y_train[:200] for t in tasks[:i]])) \
            if replay and i else None
        for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(shuffle_seeds[i])).split(BATCH):
            if pool is None:
                loss = F.cross_entropy(model(x[idx]), y[idx])
            else:
                pick = torch.randint(len(pool[0]), (BATCH,), generator=draw)
                loss = F.cross_entropy(model(torch.cat([x[idx], pool[0][pick]])), torch.cat([y[idx], pool[1][pick]]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scores.append(evaluate())
    return scores


def timed(fn) -> tuple:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def measure(variant: str, stream, context, cost: str = "basic") -> dict:
    """CPU and wall seconds of one variant's loop, its accuracy matrix, and EWC's inner timings."""
    from lifelong.orchestrator import play
    from lifelong.seeding import derive_seed
    from lifelong.strategies.registry import strategy_class

    if variant.startswith("bare"):
        ctx = context()
        model = ctx.new_model()
        seeds = [derive_seed(SEED, "shuffle", task.id) for task in stream.tasks]
        cpu, wall, scores = timed(lambda: bare_loop(model, stream.tasks, seeds, variant == "bare-replay"))
        return {"cpu": cpu, "wall": wall, "scores": scores}
    strategy = strategy_class(variant)(PARAMS[variant])
    ctx = context()
    strategy.setup(ctx)
    inner = {}
    for name in INNER.get(variant, ()):
        if hasattr(strategy, name):  # an older engine may lack one (no add_penalty_grad before point 8)
            inner[name] = 0.0
            setattr(strategy, name, accumulated(getattr(strategy, name), inner, name, time.process_time))
    cpu, wall, record = timed(lambda: play(strategy, ctx, variant, cost=cost))
    return {"cpu": cpu, "wall": wall, "scores": record.scores.tolist(), **inner}




def render(data: dict) -> str:
    runs, med = data["runs"], statistics.median
    lines = [f"split Fashion-MNIST {N_TASKS} x 2 classes, {data['train_per_task']} training / {data['test_per_task']} "
             f"test examples per task, batch {BATCH}, 1 epoch; cost accounting {data.get('cost', 'basic')}; "
             f"torch threads {data['threads']}; {data['reps']} "
             f"rounds after a warm-up; 1-min load average {data['load'][0]:.1f} -> {data['load'][1]:.1f}"
             + (" (shared machine: noisy)" if max(data["load"]) > 1.5 else ""),
             "", "| variant | loop CPU s (median) | wall s | CPU / bare CPU, median [min-max] | goal |",
             "|---|---:|---:|---:|---|"]
    for variant, rounds in runs.items():
        ratios = [r["cpu"] / b["cpu"] for r, b in zip(rounds, runs["bare"])]
        goal = GOALS.get(variant)
        verdict = "" if goal is None else f"<= {goal}: {'met' if med(ratios) <= goal else 'missed'}"
        lines.append(f"| {variant} | {med(r['cpu'] for r in rounds):.3f} | {med(r['wall'] for r in rounds):.3f} | "
                     f"{med(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}] | {verdict} |")
    for variant, names in INNER.items():
        timed_names = [name for name in names if variant in runs and name in runs[variant][0]]
        if timed_names:
            cells = []
            for name in timed_names:
                share = [r[name] / r["cpu"] for r in runs[variant]]
                cells.append(f"{names[name]} {med(share):.1%} [{min(share):.1%}-{max(share):.1%}]")
            lines += ["", f"{variant}: share of its loop CPU time, median [min-max]: " + ", ".join(cells)]
    same = runs["naive"][0]["scores"] == runs["bare"][0]["scores"] if {"naive", "bare"} <= runs.keys() else None
    stable = all(r["scores"] == rounds[0]["scores"] for rounds in runs.values() for r in rounds)
    lines += ["", f"engine naive and bare loop give the same accuracy matrix: {same}; "
                  f"every variant the same matrix in every round: {stable}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-per-task", type=int, default=12000, help="training examples per task (max 12000)")
    parser.add_argument("--test-per-task", type=int, default=2000, help="test examples per task (max 2000)")
    parser.add_argument("--reps", type=int, default=5, help="measured rounds after the warm-up round")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--variants", nargs="+", default=["bare", "bare-replay", "naive", "replay", "ewc"])
    parser.add_argument("--cost", choices=("off", "basic", "full"), default="basic",
                        help="the engine's cost accounting (lifelong.cost); basic is a run's default")
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args()
    if "bare" not in args.variants:
        parser.error("--variants must include bare: every ratio is taken against it")
    import torch
    torch.set_num_threads(args.threads)
    stream, context = build(args.train_per_task, args.test_per_task)
    load = [os.getloadavg()[0]]
    runs = {variant: [] for variant in args.variants}
    for round_ in range(args.reps + 1):
        shift = round_ % len(args.variants)
        for variant in args.variants[shift:] + args.variants[:shift]:
            result = measure(variant, stream, context, args.cost)
            if round_:
                runs[variant].append(result)
            print(f"  round {round_}{' (warm-up)' if not round_ else ''} {variant:12s} CPU {result['cpu']:.3f} s",
                  file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])
    data = {"runs": runs, "reps": args.reps, "threads": args.threads, "load": load, "cost": args.cost,
            "train_per_task": len(stream.tasks[0].x_train), "test_per_task": len(stream.tasks[0].x_test)}
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    print(render(data))


if __name__ == "__main__":
    main()
