"""What resume costs: the run folder's bookkeeping per task on Split Fashion-MNIST.

    python benchmarks/bench_resume.py                                   # full size: 5 tasks, all images
    python benchmarks/bench_resume.py --train-per-task 200 --test-per-task 200 --epochs 1   # a quick look

Runs `run_experiment` (references off, report on) and times, inside the run, everything the
`RecordWriter` does to make a run resumable: appending each evaluation's row and each task's stats to
the record log, writing the checkpoint (strategy state + the log's length) after every task, events.
`write_tables` (record.csv and friends, once at the end) and the report are timed apart. Then the same
run without the RecordWriter hooks (`no checkpoints`), for the wall-time difference (noisy on a shared
machine: the in-run share is the figure to trust). The goal: bookkeeping under 5% of run time.
One torch thread by default (`--threads`), as on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from lifelong import run as run_module
from lifelong.config import REPO_ROOT, load_config
from lifelong.run_folder import RunFolder

from timing import accumulated  # benchmarks/timing.py (the script's folder is on the path)

HOOKS = ("on_run_start", "on_eval", "on_task_end")


def config(args):
    overrides = [f"stream.train_per_task={args.train_per_task}" if args.train_per_task else None,
                 f"stream.test_per_task={args.test_per_task}" if args.test_per_task else None,
                 f"training.epochs={args.epochs}", f"strategies=[{', '.join('{name: %s}' % s for s in args.strategies)}]",
                 "references.enabled=false", "device=cpu", f"threads={args.threads}"]
    base = REPO_ROOT / "configs/quickstart.yaml"
    return load_config(base, ["stream=split_fmnist", *[o for o in overrides if o]])


def timed(owner, name: str, spent: dict):
    original = getattr(owner, name)
    return original, accumulated(original, spent, name)


def one_run(cfg, out: Path, checkpoints: bool) -> dict:
    spent: dict[str, float] = defaultdict(float)
    patched = [(run_module.RecordWriter, name) for name in HOOKS] + [(RunFolder, "write_tables")]
    originals = []
    for owner, name in patched:
        original, wrapper = timed(owner, name, spent)
        originals.append((owner, name, original))
        skipped = not checkpoints and name in ("on_eval", "on_task_end")  # on_run_start keeps the records list
        setattr(owner, name, (lambda *a, **k: None) if skipped else wrapper)
    report = run_module.write_report
    run_module.write_report = timed(run_module, "write_report", spent)[1]
    try:
        started = time.perf_counter()
        run_module.run_experiment(cfg, out=out, progress=False)
        wall = time.perf_counter() - started
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        run_module.write_report = report
    checkpoint = max((p.stat().st_size for p in (out / "checkpoints").glob("*.pt")), default=0)
    log = out / "record.rows.jsonl"
    return {"wall": wall, "bookkeeping": sum(spent[h] for h in HOOKS), "tables": spent["write_tables"],
            "report": spent["write_report"], "checkpoint_mb": checkpoint / 2**20,
            "log_kb": log.stat().st_size / 2**10 if log.exists() else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-per-task", type=int, default=None, help="cap on training images per task")
    parser.add_argument("--test-per-task", type=int, default=None, help="cap on test images per task")
    parser.add_argument("--strategies", nargs="+", default=["naive", "ewc"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config(args)
    n_tasks = cfg.stream.n_tasks * len(cfg.strategies) * len(cfg.seeds)
    rows = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        one_run(cfg, Path(tmp) / "warm-up", True)  # data loading and first-call costs, not counted
        for rep in range(args.reps):  # interleaved: the machine's noise hits both alike
            for checkpoints in (True, False):
                rows[checkpoints].append(one_run(cfg, Path(tmp) / f"{rep}-{checkpoints}", checkpoints))
    med = {k: {m: statistics.median(r[m] for r in runs) for m in runs[0]} for k, runs in rows.items()}
    on, off = med[True], med[False]
    run_on, run_off = (m["wall"] - m["report"] - m["tables"] for m in (on, off))  # the report differs: NaN rows
    print(f"Split Fashion-MNIST, {cfg.stream.n_tasks} tasks x {len(cfg.strategies)} strategies "
          f"({', '.join(args.strategies)}), {args.epochs} epoch(s), {args.threads} thread(s); "
          f"medians of {args.reps} interleaved runs; share = of the run with checkpoints, report left out")
    print(f"{'':34s}{'seconds':>10s}{'per task':>11s}{'share':>8s}")
    for label, seconds in (("run, with checkpoints", run_on), ("run, no checkpoints", run_off),
                           ("wall-time difference", run_on - run_off),
                           ("RecordWriter (log + checkpoints)", on["bookkeeping"]),
                           ("record tables at the end", on["tables"]), ("report (apart)", on["report"])):
        print(f"{label:34s}{seconds:10.3f}{1000 * seconds / n_tasks:9.1f}ms{100 * seconds / run_on:7.2f}%")
    print(f"checkpoint size {on['checkpoint_mb']:.2f} MB (largest), record log {on['log_kb']:.1f} KB")
    share = (on["bookkeeping"] + on["tables"]) / run_on
    print(f"goal: bookkeeping (RecordWriter + tables) < 5% of run time -> {100 * share:.2f}% {'met' if share < 0.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
