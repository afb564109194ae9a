"""Report build time on a 5-seed, 4-strategy, 20-task run, and the reference cache's hit rate when a
second config reuses the stream; and the build time of a long lifetime's report (goal: T = 1,000,
two strategies, one seed, under 30 s).

    python benchmarks/bench_report.py [--work DIR] [--repeats 5] [--json out.json]
    python benchmarks/bench_report.py --part long --tasks 1000   # the long-lifetime case only

The long case writes a synthetic run folder (random scores, a full (T+1) x T matrix per lifetime,
events with a row of scores per task as a run writes them, references for both) with the run
folder's own writer, then times `write_report` on it.

The second config is also run against an empty cache, to show what the cache saves. The run
folder is made by the engine itself: permuted digits, 20 tasks of 100 training examples,
a small MLP, two epochs of Adam.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lifelong.config import ExperimentConfig
from lifelong.evaluation.record import LifetimeRecord
from lifelong.report import write_report
from lifelong.run import run_experiment
from lifelong.run_folder import RunFolder

STREAM = {"name": "permuted_digits_20", "builder": "permuted", "dataset": "digits", "n_tasks": 20,
          "train_per_task": 100, "test_per_task": 100}


def config(name: str, strategies: list[dict], cache: Path) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": name, "stream": STREAM, "model": {"hidden": [32]}, "device": "cpu",
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.01, "optimizer": "adam"}, "strategies": strategies,
        "seeds": [0, 1, 2, 3, 4], "references": {"cache_dir": str(cache)}})


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def cpu_timed(call) -> tuple[float, float]:
    """(wall, CPU) seconds of this process: CPU time is what a busy shared machine disturbs least."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def long_lifetime(work: Path, n_tasks: int) -> dict:
    """Build time of the report of a T = `n_tasks` run with two strategies and one seed."""
    rng = np.random.default_rng(0)
    names = [f"task{j}" for j in range(n_tasks)]
    records = [LifetimeRecord(label, 0, names, "classification", rng.random((n_tasks + 1, n_tasks)),
                              rng.random((n_tasks + 1, n_tasks)), np.full(n_tasks, 0.01), np.zeros(n_tasks))
               for label in ("naive", "ewc")]
    path = work / f"long_{n_tasks}"
    shutil.rmtree(path, ignore_errors=True)
    folder = RunFolder(path)
    folder.write_records(records)
    folder.write_yaml("config.yaml", {"name": f"long_{n_tasks}", "seeds": [0],
                                      "strategies": [{"name": "naive"}, {"name": "ewc"}],
                                      "stream": {"name": "synthetic", "n_tasks": n_tasks}})
    for record in records:
        for task in range(n_tasks):
            folder.append_event({"event": "task_end", "strategy": record.strategy, "seed": 0, "task": task,
                                 "scores": record.scores[task + 1]})  # as a run writes it: a row per event
    folder.write_json("references.json", {"joint_at": [n_tasks], "cache_dir": "none", "entries": [
        {"strategies": ["naive", "ewc"], "seed": 0, "independent": list(rng.random(n_tasks)),
         "joint": [None] * (n_tasks - 1) + [1.0], "independent_source": "synthetic", "joint_source": "synthetic"}]})
    wall, cpu = cpu_timed(lambda: write_report(path))
    return {"tasks": n_tasks, "strategies": 2, "seeds": 1, "report_build_seconds": wall, "cpu_seconds": cpu,
            "record_csv_mb": (path / "record.csv").stat().st_size / 2**20,
            "events_mb": (path / "events.jsonl").stat().st_size / 2**20,
            "report_html_kb": (path / "report.html").stat().st_size / 1024,
            "report_md_kb": (path / "report.md").stat().st_size / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--part", choices=("all", "engine", "long"), default="all")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks of the long-lifetime case")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_report_"))
    results = {}
    if args.part in ("all", "long"):
        results["long_lifetime"] = long_lifetime(work, args.tasks)
    if args.part in ("all", "engine"):
        results.update(engine(work, args.repeats))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def engine(work: Path, repeats: int) -> dict:
    """A real 20-task run: report build time and the reference cache's reuse across two configs."""
    shutil.rmtree(work / "cache", ignore_errors=True)

    first = config("four_strategies", [{"name": "naive"}, {"name": "replay", "params": {"buffer_size": 100}},
                                       {"name": "ewc", "params": {"lambda": 10}}, {"name": "independent"}],
                   work / "cache")
    run, run_seconds = timed(lambda: run_experiment(first, out=work / "first", progress=False))
    second = config("another_config", [{"name": "replay", "label": "replay-50", "params": {"buffer_size": 50}},
                                       {"name": "ewc", "label": "ewc-30", "params": {"lambda": 30}}],
                    work / "cache")
    rerun, rerun_seconds = timed(lambda: run_experiment(second, out=work / "second", progress=False))
    shutil.rmtree(work / "cold_cache", ignore_errors=True)
    cold = second.model_copy(update={"references": second.references.model_copy(
        update={"cache_dir": str(work / "cold_cache")})})
    cold_run, cold_seconds = timed(lambda: run_experiment(cold, out=work / "second_cold", progress=False))

    builds = [cpu_timed(lambda: write_report(work / "first")) for _ in range(repeats)]
    walls, cpus = [b[0] for b in builds], [b[1] for b in builds]
    cli, cli_seconds = timed(lambda: subprocess.run([sys.executable, "-m", "lifelong.cli", "report",
                                                     str(work / "first")], capture_output=True, text=True))
    html = work / "first/report.html"

    def rate(refs: dict) -> float:
        return refs["cache_hits"] / max(1, refs["cache_hits"] + refs["cache_misses"])

    return {
        "run": {"seeds": 5, "strategies": 4, "tasks": 20, "records": len(run.records), "seconds": run_seconds,
                "references": {k: run.references[k] for k in ("joint_at", "cache_hits", "cache_misses")},
                "sources": sorted({e[f"{k}_source"] for e in run.references["entries"]
                                   for k in ("independent", "joint")})},
        "report_build_seconds": {"wall_median": statistics.median(walls), "wall_min": min(walls),
                                 "cpu_median": statistics.median(cpus), "cpu_min": min(cpus), "wall_all": walls},
        "report_cli_seconds": cli_seconds, "report_cli_ok": cli.returncode == 0,
        "report_html_kb": html.stat().st_size / 1024,
        "second_config": {"seconds": rerun_seconds, "cache_hits": rerun.references["cache_hits"],
                          "cache_misses": rerun.references["cache_misses"], "hit_rate": rate(rerun.references),
                          "seconds_with_a_cold_cache": cold_seconds,
                          "cold_cache_misses": cold_run.references["cache_misses"]},
        "first_config_hit_rate": rate(run.references),
    }


if __name__ == "__main__":
    main()
