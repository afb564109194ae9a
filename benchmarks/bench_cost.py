"""Cost-accounting benchmark: what `cost: basic` and `cost: full` add to a run, and how repeatable
the per-task energy figure is.

    python benchmarks/bench_cost.py                          # the real figures (about 15-25 min, idle machine)
    python benchmarks/bench_cost.py --reps 1 --ab-rounds 1 --energy-reps 2 --train-per-task 200 --test-per-task 100
                                                             # a smoke test at tiny size (a minute or two)

The stream, model and budget are benchmarks/bench_core.py's (split Fashion-MNIST, 5 tasks x 2
classes, MLP 784-256-256-10, SGD batch 32, 1 epoch, every task evaluated after every task), built
by its `engine_config`, optionally capped per task (--train-per-task, --test-per-task) for smoke
tests. Measured, one torch thread:

* cold: each (strategy, level) in its own subprocess, interleaved over --reps repetitions: the whole
  `run_experiment` (a user's run: one-time imports such as FlopCounterMode's torch._dynamo, and under
  `full` CodeCarbon, included) and its loop (`play`: training and evaluations);
* warm: --ab-rounds rounds of off / basic / full alternating in one process after a warm-up round,
  the loop alone (wall and process CPU time, the latter less disturbed by other jobs): the per-step
  cost of counting;
* energy: --energy-reps runs of `naive` in one process, the spread per task: at `basic` where RAPL
  measures, else at `full` (CodeCarbon's estimate, labelled so).
Ratios are taken per repetition (basic or full over off, run back to back), medians reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import MARK, cpu_model, engine_config, max_rss_mb  # noqa: E402  (the shared benchmark stream)
from timing import accumulated  # noqa: E402

LEVELS = ("off", "basic", "full")
STRATEGIES = ("naive", "replay", "ewc")


def config(strategy: str, level: str, args) -> dict:
    raw = {**engine_config(strategy), "cost": level}
    raw["stream"] = {**raw["stream"], **({"train_per_task": args.train_per_task} if args.train_per_task else {}),
                     **({"test_per_task": args.test_per_task} if args.test_per_task else {})}
    return raw


def run_once(strategy: str, level: str, args) -> dict:
    """One run_experiment: its wall time, its loop's (play) wall time, and the record's cost."""
    from lifelong.config import ExperimentConfig
    from lifelong import orchestrator, run

    spent = {"loop": 0.0, "loop_cpu": 0.0}
    run.play = accumulated(accumulated(orchestrator.play, spent, "loop_cpu", time.process_time), spent, "loop")
    experiment = ExperimentConfig.model_validate(config(strategy, level, args))
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as out:
        started = time.perf_counter()
        result = run.run_experiment(experiment, out=out, progress=False)
        wall = time.perf_counter() - started
    record = result.records[0]
    return {"run": wall, "loop": spent["loop"], "loop_cpu": spent["loop_cpu"],
            "train": float(record.train_seconds.sum()), "task_cost": record.task_cost, "rss_mb": max_rss_mb()}


def child(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    kind, _, rest = args.child.partition(":")
    if kind == "cold":
        strategy, level = rest.split(",")
        return run_once(strategy, level, args)
    if kind == "warm":
        rounds = []
        for i in range(args.ab_rounds + 1):  # round 0 warms every level up and is not counted
            order = LEVELS if i % 2 == 0 else LEVELS[::-1]
            result = {level: run_once(rest, level, args) for level in order}
            result = {**{level: r["loop"] for level, r in result.items()},
                      **{f"{level}_cpu": r["loop_cpu"] for level, r in result.items()}}
            if i:
                rounds.append(result)
        return {"rounds": rounds}
    from lifelong.cost.energy import NoEnergy, energy_meter

    level = "full" if isinstance(energy_meter(torch.device("cpu"), estimate=False), NoEnergy) else "basic"
    runs = [run_once("naive", level, args)["task_cost"] for _ in range(args.energy_reps)]
    return {"energy": [[task.get("energy_j") for task in costs] for costs in runs],
            "method": runs[0][0].get("energy_method")}


def spawn(name: str, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--child", name, *_passed(args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith(MARK))[len(MARK):])


def _passed(args) -> list[str]:
    out = ["--threads", str(args.threads), "--ab-rounds", str(args.ab_rounds), "--energy-reps", str(args.energy_reps)]
    for flag in ("train_per_task", "test_per_task"):
        if getattr(args, flag):
            out += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return out


def driver(args) -> dict:
    cold = {(s, level): [] for s in STRATEGIES for level in LEVELS}
    for rep in range(args.reps):
        for s in STRATEGIES:
            for level in (LEVELS if rep % 2 == 0 else LEVELS[::-1]):
                cold[s, level].append(spawn(f"cold:{s},{level}", args))
                r = cold[s, level][-1]
                print(f"  rep {rep + 1} {s:7s} {level:5s} run {r['run']:6.2f}s loop {r['loop']:6.2f}s", file=sys.stderr)
    warm = {s: spawn(f"warm:{s}", args)["rounds"] for s in STRATEGIES} if args.ab_rounds else {}
    energy = spawn("energy", args) if args.energy_reps else None
    return {"cold": {f"{s},{level}": runs for (s, level), runs in cold.items()}, "warm": warm, "energy": energy,
            "threads": args.threads, "reps": args.reps, "load_average": os.getloadavg()[0],
            "size": {"train_per_task": args.train_per_task, "test_per_task": args.test_per_task}}


def ratio_cell(pairs: list[tuple[float, float]]) -> str:
    ratios = [a / b for a, b in pairs]
    return f"{statistics.median(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def render(data: dict) -> str:
    lines = [f"machine: {cpu_model()}, {os.cpu_count()} CPUs; torch threads {data['threads']}; {data['reps']} "
             f"repetitions; load average {data['load_average']:.1f}; size {data['size']} (None: the full stream)", "",
             "| strategy | off run s | basic / off: run | loop | full / off: run | loop | warm basic / off loop | "
             "(CPU) | warm full / off loop | (CPU) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cold, warm = data["cold"], data["warm"]
    for s in STRATEGIES:
        off = cold[f"{s},off"]
        cells = [f"{statistics.median(r['run'] for r in off):.2f}"]
        for level in ("basic", "full"):
            runs = cold[f"{s},{level}"]
            cells += [ratio_cell([(a[key], b[key]) for a, b in zip(runs, off)]) for key in ("run", "loop")]
        for level in ("basic", "full"):
            for suffix in ("", "_cpu"):
                cells.append(ratio_cell([(r[level + suffix], r["off" + suffix]) for r in warm[s]])
                             if warm.get(s) else "n/a")
        lines.append(f"| {s} | {' | '.join(cells)} |")
    energy = data.get("energy")
    if energy:
        lines += ["", f"Per-task training energy of `naive` over {len(energy['energy'])} repetitions "
                      f"({energy['method']}):", "", "| task | mean J | std J | CV |", "|---:|---:|---:|---:|"]
        for task, values in enumerate(zip(*energy["energy"])):
            values = [v for v in values if v is not None and v == v]
            if len(values) < 2:
                lines.append(f"| {task + 1} | n/a | n/a | n/a |")
                continue
            mean, std = statistics.mean(values), statistics.stdev(values)
            lines.append(f"| {task + 1} | {mean:.2f} | {std:.2f} | {std / mean:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ab-rounds", type=int, default=3, help="warm in-process rounds of off/basic/full (0: skip)")
    parser.add_argument("--energy-reps", type=int, default=5, help="repetitions for the energy spread (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-per-task", type=int, help="cap on training examples per task (smoke tests)")
    parser.add_argument("--test-per-task", type=int, help="cap on test examples per task (smoke tests)")
    parser.add_argument("--json", help="also write every measurement here")
    parser.add_argument("--render", metavar="JSON", help="only print the tables of a --json file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    if args.child:
        print(MARK + json.dumps(child(args)), flush=True)
        return
    data = driver(args)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    print(render(data))


if __name__ == "__main__":
    main()
