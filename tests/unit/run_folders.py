"""Synthetic run folders, written the way `lifelong run` writes them but without training anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lifelong.evaluation.analysis import analyse, reference_scores
from lifelong.evaluation.record import LifetimeRecord
from lifelong.run_folder import RunFolder


def keeps(T: int, level: float = 0.9) -> np.ndarray:
    """Learns every task to `level` and keeps it: no forgetting."""
    R = np.full((T + 1, T), 0.1)
    for i in range(1, T + 1):
        R[i, :i] = level
    return R


def forgets(T: int, level: float = 0.9) -> np.ndarray:
    """Learns every task to `level` and drops it to 0.1 at the next task."""
    R = np.full((T + 1, T), 0.1)
    for i in range(1, T + 1):
        R[i, i - 1] = level
    return R


def write_run(path: Path, matrices: dict[str, list[np.ndarray]], stream: str = "s1", few_shot: bool = False,
              independent: float | None = 0.95, joint: float | None = None, stopped: dict | None = None,
              first_seed: int = 0) -> Path:
    """One record per (strategy, seed) from `matrices[strategy][seed - first_seed]`, plus the files a run writes.
    `stopped[(strategy, seed)] = k`: that lifetime's events end after task k (a killed run)."""
    records = []
    for label, per_seed in matrices.items():
        for seed, R in enumerate(per_seed, start=first_seed):
            T = R.shape[1]
            curves = np.stack([R - 0.2, R - 0.1, R], axis=-1) if few_shot else None
            records.append(LifetimeRecord(label, seed, [f"T{j + 1}" for j in range(T)], "classification", R,
                                          1 - R, np.full(T, 0.01), np.zeros(T), curves=curves))
    T = records[0].n_tasks
    folder = RunFolder(path)
    folder.write_records(records)
    for record in records:
        for task in range((stopped or {}).get((record.strategy, record.seed), record.n_tasks)):
            folder.append_event({"event": "task_end", "strategy": record.strategy, "seed": record.seed, "task": task})
    folder.write_yaml("config.yaml", {
        "name": path.name, "strategies": [{"name": label} for label in matrices], "stream": {"name": stream, "builder": "split", "scenario": "class-il", "n_tasks": T},
        "evaluation": {"mode": "few-shot" if few_shot else "standard", "shots": 2, "steps": 2},
        "seeds": sorted({r.seed for r in records}), "analysis": {"tolerance": 0.02}})
    folder.write_json("environment.json", {"python": "3.11", "device": "cpu"})
    references = None
    if independent is not None:
        references = {"joint_at": list(range(1, T + 1)), "cache_dir": "cache", "cache_hits": 0, "cache_misses": 0,
                      "entries": [{"strategies": list(matrices), "seed": seed, "key": "k",
                                   "independent": [independent] * T,
                                   "joint": [independent if joint is None else joint] * T,
                                   "independent_source": "trained", "joint_source": "trained"}
                                  for seed in sorted({r.seed for r in records})]}
        folder.write_json("references.json", references)
    folder.write_json("metrics.json", analyse(records, reference_scores(references)))
    return path
