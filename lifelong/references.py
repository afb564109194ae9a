"""The reference learners that negative transfer and intransigence are measured against.

- independent: the same model and budget trained from scratch on task j alone -> r_j.
- joint: the same model trained from scratch on the union of tasks 1..k -> a*_k (RWalk).

Each is trained once per (stream, model, budget, evaluation, seed, code) and cached under a
content hash, so a second strategy or config on the same stream reuses them. "Code" is the source
text of the modules that build, train and score a reference: editing any of them makes a new key,
so a cached score never outlives the code that made it. A reference the config already runs as a
strategy is read off that record instead of being trained again. Each cache entry is locked while
it is filled, so two runs at once never train the same reference twice: the second waits and reads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from lifelong.evaluation.evaluator import evaluate_stream, evaluate_stream_few_shot
from lifelong.evaluation.fewshot import support_set
from lifelong.evaluation.record import LifetimeRecord
from lifelong.run_folder import atomic_write
from lifelong.strategies.base import Strategy, StrategyContext
from lifelong.strategies.independent import Independent
from lifelong.strategies.joint import Joint
from lifelong.strategies.registry import strategy_class
from lifelong.streams.task import Stream, Task
from lifelong.training import TrainingSpec

KINDS = {"independent": Independent, "joint": Joint}

# The modules whose code decides a reference's scores: its data, model, training and scoring (and
# every stream builder, see `reference_modules`).
REFERENCE_CODE = ("lifelong.references", "lifelong.training", "lifelong.models", "lifelong.adapt",
                  "lifelong.seeding", "lifelong.evaluation.evaluator", "lifelong.evaluation.fewshot",
                  "lifelong.strategies.base", "lifelong.strategies.independent", "lifelong.strategies.joint",
                  "lifelong.streams.builders", "lifelong.streams.registry", "lifelong.streams.sources",
                  "lifelong.streams.task")


def reference_modules() -> tuple[str, ...]:
    """REFERENCE_CODE and every module of `lifelong.streams.builtin`, where the builders make the data."""
    from lifelong.streams import builtin

    found = sorted(module.name for module in pkgutil.iter_modules(builtin.__path__))
    return REFERENCE_CODE + tuple(f"{builtin.__name__}.{name}" for name in found)


def module_source(name: str) -> bytes:
    return Path(importlib.util.find_spec(name).origin).read_bytes()


def code_digest() -> str:
    """One hash of the source of every module in `reference_modules()`."""
    digest = hashlib.sha256()
    for name in reference_modules():
        digest.update(name.encode() + b"\0" + module_source(name) + b"\0")
    return digest.hexdigest()[:20]


def reference_key(config, training: TrainingSpec, seed: int, device: torch.device) -> tuple[str, dict]:
    """A content hash of everything a reference's scores depend on, and the content itself."""
    content = {"stream": config.stream.model_dump(mode="json"), "model": config.model.model_dump(mode="json"),
               "training": training.model_dump(mode="json"), "evaluation": config.evaluation.model_dump(mode="json"),
               "seed": seed, "code": code_digest(), "torch": torch.__version__, "device": device.type}
    if config.stream.outside_code() is not None:
        content["stream_code"] = config.stream.outside_code()
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20], content


@dataclass
class ReferenceCache:
    """One JSON file per (kind, key) mapping 1-based task k to its reference score. Counts
    trainings: a hit is one training the cache saved, a miss one that had to run."""

    folder: Path
    hits: int = 0
    misses: int = 0

    def path(self, kind: str, key: str) -> Path:
        return Path(self.folder) / f"{kind}-{key}.json"

    def lock(self, kind: str, key: str) -> FileLock:
        """Held while an entry is read and filled: a second run waits, then reads what the first trained."""
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path.with_name(path.name + ".lock"))

    def load(self, kind: str, key: str) -> dict[int, float]:
        path = self.path(kind, key)
        return {int(k): v for k, v in json.loads(path.read_text())["scores"].items()} if path.is_file() else {}

    def save(self, kind: str, key: str, content: dict, scores: dict[int, float]) -> None:
        data = {"kind": kind, "content": content, "scores": {str(k): scores[k] for k in sorted(scores)}}
        atomic_write(self.path(kind, key), json.dumps(data, indent=1) + "\n")


@dataclass
class _Budget:
    """Strategies of one seed that share a training budget, hence one set of references."""

    training: TrainingSpec
    labels: list[str] = field(default_factory=list)
    listed: dict[str, LifetimeRecord] = field(default_factory=dict)  # kind -> a record of that strategy


def compute_references(config, stream: Stream, device: torch.device, records: list[LifetimeRecord],
                       cache: ReferenceCache, log=None) -> dict:
    """References for every (strategy, seed) of the run, as written to references.json."""
    joint_at = config.references.joint_tasks(len(stream))
    tasks = stream.tasks  # built when a reference needs them
    entries = []
    for seed in config.seeds:
        for budget in _budgets(config, records, seed):
            key, content = reference_key(config, budget.training, seed, device)
            ctx = StrategyContext(stream, config.model, budget.training, device, seed, config.evaluation)
            entry = {"strategies": budget.labels, "seed": seed, "key": key,
                     "training": budget.training.model_dump(mode="json")}
            for kind, wanted in (("independent", range(1, len(tasks) + 1)), ("joint", joint_at)):
                scores, entry[f"{kind}_source"] = _scores(kind, list(wanted), budget.listed.get(kind), ctx, tasks,
                                                          cache, key, content)
                entry[kind] = [scores.get(k, float("nan")) for k in range(1, len(tasks) + 1)]
                if log:
                    log(f"references, seed {seed}: {kind} {entry[f'{kind}_source']}")
            entries.append(entry)
    return {"joint_at": joint_at, "cache_dir": str(cache.folder), "cache_hits": cache.hits,
            "cache_misses": cache.misses, "entries": entries}


def _budgets(config, records: list[LifetimeRecord], seed: int) -> list[_Budget]:
    by_spec: dict[str, _Budget] = {}
    complete = {r.strategy: r for r in records if r.seed == seed and r.completed == r.n_tasks
                and not np.isnan(np.diagonal(r.scores[1:])).any()}  # a schedule may have skipped some
    for entry in config.strategies:
        training = config.training_for(entry)
        budget = by_spec.setdefault(training.model_dump_json(), _Budget(training))
        budget.labels.append(entry.display_name)
        kind = next((k for k, cls in KINDS.items() if strategy_class(entry.name) is cls), None)
        if kind and entry.display_name in complete:
            budget.listed.setdefault(kind, complete[entry.display_name])
    return list(by_spec.values())


def _scores(kind: str, wanted: list[int], listed: LifetimeRecord | None, ctx: StrategyContext,
            tasks: Sequence[Task], cache: ReferenceCache, key: str, content: dict) -> tuple[dict[int, float], str]:
    """Scores at the wanted k: from the run's own strategy, else the cache, training what is missing."""
    if listed is not None:  # its record's diagonal R[k][k] is the reference (all k, at no cost)
        scores = {k: float(listed.scores[k, k - 1]) for k in range(1, len(tasks) + 1)}
        with cache.lock(kind, key):
            cache.save(kind, key, content, scores)
        return scores, f"read from this run's strategy {listed.strategy!r}"
    with cache.lock(kind, key):
        scores = cache.load(kind, key)
        missing = [k for k in wanted if k not in scores]
        cache.hits += len(wanted) - len(missing)
        cache.misses += len(missing)
        if missing:
            strategy = KINDS[kind]()
            strategy.setup(ctx)
            for k in missing:  # saved after each training, so an interrupted run keeps what it trained
                scores[k] = _train_and_score(strategy, kind, ctx, tasks, k)
                cache.save(kind, key, content, scores)
    return {k: scores[k] for k in wanted}, f"{len(wanted) - len(missing)} from cache, {len(missing)} trained"


def _train_and_score(strategy: Strategy, kind: str, ctx: StrategyContext, tasks: Sequence[Task], k: int) -> float:
    """Train the reference for task k (1-based) and score it on task k as the run's evaluator would."""
    task = tasks[k - 1].to(ctx.device)
    if kind == "joint":
        # Joint retrains from scratch on `seen` + the new task, so setting `seen` gives the joint
        # model on 1..k directly, identical to the one the strategy holds after task k.
        strategy.seen = [seen.to(ctx.device) for seen in tasks[:k - 1]]
    strategy.learn(task)
    spec = ctx.evaluation
    if spec.mode == "few-shot":
        support = support_set(task, spec.shots, ctx.seed)
        return float(evaluate_stream_few_shot(strategy, (task,), [support], spec.steps)[0, -1, 0])
    return float(evaluate_stream(strategy, (task,), ctx.stream.n_outputs)[0, 0])
