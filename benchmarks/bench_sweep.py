"""Sweep throughput: 3 strategies x 2 streams x N seeds run one after the other, on the local pool with
--jobs 2, and on the Ray backend (a Ray started for the sweep on this machine).

    python benchmarks/bench_sweep.py [--size tiny|full|fmnist|long] [--jobs 2] [--no-ray] [--work DIR] [--json out.json]

`full` is the issue's measurement: naive, replay, EWC x split and permuted digits x 5 seeds = 30 runs
of configs/quickstart.yaml's budget (5 tasks, 5 epochs, MLP 256-256), no references; a run takes about
0.4-2.4 s, so worker start-up weighs. `fmnist` is the same grid on split and permuted Fashion-MNIST
(5 tasks, 2000 training / 500 test images per task, 1 epoch, lr 0.01: EWC diverges at the quickstart's
0.05 here): runs of about a second. `long`: the same streams with 6000 training / 1000 test images per
task, 2 epochs and lr 0.005, runs of several seconds. `tiny` (2 seeds, 2 tasks, 50 examples per
task, 1 epoch) only checks that the script works. Goal: --jobs 2 >= 1.7x the sequential sweep on a
2-core machine. Each backend writes its own sweep folder, so nothing is skipped; wall time includes worker
start-up (and Ray's).

Every run is pinned to one torch thread (`set: {threads: 1}`), so each backend does the same work and must
give the sequential sweep's records bit for bit (checked and reported): torch's CPU reductions depend on
the thread count, so runs with other thread counts differ in the last bits. The last row, for reference,
is the sequential sweep with the sweep's default threads (all cores for one run at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from lifelong.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]
DIGITS = ["split_digits", "permuted_digits"]
SIZES = {
    "tiny": {"seeds": 2, "streams": DIGITS,
             "set": {"stream.n_tasks": 2, "stream.train_per_task": 50, "stream.test_per_task": 50,
                     "training.epochs": 1, "model.hidden": [32]}},
    "full": {"seeds": 5, "streams": DIGITS, "set": {}},  # the quickstart budget as it is: 5 epochs, MLP 256-256
    # runs of a few seconds, where a run's own work outweighs a worker's start-up
    "fmnist": {"seeds": 5, "streams": ["split_fmnist", "permuted_fmnist"],
               "set": {"stream.n_tasks": 5, "stream.train_per_task": 2000, "stream.test_per_task": 500,
                       "training.epochs": 1, "training.lr": 0.01}},
    # runs of several seconds each, as a sweep worth spreading over cores has
    "long": {"seeds": 5, "streams": ["split_fmnist", "permuted_fmnist"],
             "set": {"stream.n_tasks": 5, "stream.train_per_task": 6000, "stream.test_per_task": 1000,
                     "training.epochs": 2, "training.lr": 0.005}},  # EWC diverges at 0.01 on permuted here
}


def write_sweep(work: Path, size: str, one_thread: bool) -> Path:
    path = work / f"bench_sweep_{size}{'' if one_thread else '_default_threads'}.yaml"
    pinned = {"threads": 1} if one_thread else {}
    path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs/quickstart.yaml"),
        "set": {"references.enabled": False, "device": "cpu", **pinned, **SIZES[size]["set"]},
        "grid": {"strategy": ["naive", {"name": "replay", "params": {"buffer_size": 200}},
                              {"name": "ewc", "params": {"lambda": 100, "mode": "separate"}}],
                 "stream": SIZES[size]["streams"], "seed": list(range(SIZES[size]["seeds"]))},
    }, sort_keys=False))
    return path


def records(folder: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(folder.glob("runs/*/record.csv"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    sweep, default_threads = write_sweep(work, args.size, True), write_sweep(work, args.size, False)
    cases = [("sequential", "local", {"jobs": 1}, sweep),
             (f"local --jobs {args.jobs}", "local", {"jobs": args.jobs}, sweep)]
    if not args.no_ray:
        cases.append(("ray (local Ray)", "ray", {"cpus_per_run": 1}, sweep))
    cases.append(("sequential, default threads", "local", {"jobs": 1}, default_threads))
    rows, baseline, reference = [], None, None
    for n, (label, backend, options, sweep_file) in enumerate(cases):
        out = work / f"case{n}"
        started = time.perf_counter()
        result = run_sweep(sweep_file, backend=backend, out=out, progress=False, **options)
        wall = time.perf_counter() - started
        assert not result.failed, f"{label}: runs failed: {result.failed}"
        got = records(out)
        baseline, reference = baseline or wall, reference or got
        rows.append({"backend": label, "runs": len(got), "wall_s": round(wall, 2),
                     "s_per_run": round(wall / len(got), 3), "speedup": round(baseline / wall, 2),
                     "overhead_vs_local_pool_s": None, "same_records": got == reference})
    pool = next(r for r in rows if r["backend"].startswith("local --jobs"))
    for row in rows:
        if row["backend"].startswith("ray"):
            row["overhead_vs_local_pool_s"] = round(row["wall_s"] - pool["wall_s"], 2)
    print(f"sweep {sweep.name}: {rows[0]['runs']} runs, {len(os.sched_getaffinity(0))} cores, work {work}")
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join("" if row[k] is None else str(row[k]) for k in header))
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
