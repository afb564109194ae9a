"""Sweep throughput: 3 strategies x 2 streams x N seeds run one after the other, on the local pool with
--jobs 2, and on the Ray backend (a Ray started for the sweep on this machine).

    python benchmarks/bench_sweep.py [--size tiny|full] [--jobs 2] [--no-ray] [--work DIR] [--json out.json]

`full` is the issue's measurement: naive, replay, EWC x split and permuted digits x 5 seeds = 30 runs
of configs/quickstart.yaml's budget (5 tasks, 5 epochs, MLP 256-256), no references; a run takes 1-45 s
(EWC on permuted digits the longest; noisy, on a busy machine). `tiny` (2 seeds, 2 tasks, 50 examples per
task, 1 epoch) only checks that the script works. Goal: --jobs 2 >= 1.7x the sequential sweep on a
2-core machine. Every backend must give the sequential sweep's records (checked and reported). Each backend
writes its own sweep folder, so nothing is skipped; wall time includes worker start-up (and Ray's).
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
SIZES = {
    "tiny": {"seeds": 2, "set": {"stream.n_tasks": 2, "stream.train_per_task": 50, "stream.test_per_task": 50,
                                 "training.epochs": 1, "model.hidden": [32]}},
    "full": {"seeds": 5, "set": {}},  # the quickstart budget as it is: 5 epochs, MLP 256-256
}


def write_sweep(work: Path, size: str) -> Path:
    path = work / f"bench_sweep_{size}.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(REPO / "configs/quickstart.yaml"),
        "set": {"references.enabled": False, "device": "cpu", **SIZES[size]["set"]},
        "grid": {"strategy": ["naive", {"name": "replay", "params": {"buffer_size": 200}},
                              {"name": "ewc", "params": {"lambda": 100, "mode": "separate"}}],
                 "stream": ["split_digits", "permuted_digits"], "seed": list(range(SIZES[size]["seeds"]))},
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
    sweep = write_sweep(work, args.size)
    cases = [("sequential", "local", {"jobs": 1}), (f"local --jobs {args.jobs}", "local", {"jobs": args.jobs})]
    if not args.no_ray:
        cases.append(("ray (local Ray)", "ray", {"cpus_per_run": 1}))
    rows, baseline, reference = [], None, None
    for label, backend, options in cases:
        out = work / label.split()[0].replace("(", "")
        started = time.perf_counter()
        result = run_sweep(sweep, backend=backend, out=out, progress=False, **options)
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
