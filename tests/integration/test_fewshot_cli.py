"""The quick few-shot configs end to end through the CLI: meta-learners vs naive fine-tuning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lifelong.streams.sources import FASHION_MNIST_DEFAULT_ROOT, FASHION_MNIST_ENV

REPO = Path(__file__).resolve().parents[2]
LIFELONG = Path(sys.executable).with_name("lifelong")
FASHION_ROOT = Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DEFAULT_ROOT)

pytestmark = pytest.mark.slow


def run_config(name: str, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`lifelong run configs/NAME.yaml`; its record and curves. Runs in tmp_path (reference cache included).

    One torch thread: these networks are tiny, and on a busy machine two threads spin against each other.
    """
    out = tmp_path / name
    done = subprocess.run([str(LIFELONG), "run", str(REPO / "configs" / f"{name}.yaml"), "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(out / "record.csv"), pd.read_csv(out / "curves.csv")


def by_step(curves: pd.DataFrame) -> pd.DataFrame:
    """Score per (strategy, after_task, eval_task) and step, steps as columns."""
    return curves.pivot_table(index=["strategy", "after_task", "eval_task"], columns="step", values="score")


def test_sinusoid_quick_maml_beats_naive_fine_tuning_after_adaptation(tmp_path):
    record, curves = run_config("sinusoid_maml_quick", tmp_path)
    strategies = ["maml", "fomaml", "reptile", "naive"]
    n_tasks, steps = 2, 5
    assert sorted(record.strategy.unique()) == sorted(strategies) and set(record.score_name) == {"neg_mse"}
    assert len(record) == len(strategies) * (n_tasks + 1) * n_tasks
    assert len(curves) == len(strategies) * (n_tasks + 1) * n_tasks * (steps + 1)

    table = by_step(curves)
    final = record.set_index(["strategy", "after_task", "eval_task"]).score
    assert (table[steps] - final.loc[table.index]).abs().max() < 1e-6  # the record holds the last step
    before = table.xs(0, level="after_task")
    assert (before.groupby("eval_task").nunique() == 1).all().all()  # one initialisation for every strategy

    trained = table[table.index.get_level_values("after_task") > 0]
    for name in ("maml", "fomaml", "reptile"):
        assert (trained.loc[name][steps] > trained.loc[name][0]).all(), name  # adapting lowers the MSE
    mse_after_lifetime = -table.xs(n_tasks, level="after_task")[steps].groupby("strategy").mean()
    assert mse_after_lifetime["maml"] < 0.5 * mse_after_lifetime["naive"], mse_after_lifetime.to_dict()


@pytest.mark.skipif(not FASHION_ROOT.is_dir(), reason=f"Fashion-MNIST not installed in {FASHION_ROOT}")
def test_fmnist_quick_episodes_adapt_above_chance(tmp_path):
    record, curves = run_config("fewshot_fmnist_quick", tmp_path)
    strategies, n_tasks, steps, ways = ["protomem", "maml", "anil", "naive"], 2, 3, 3
    assert sorted(record.strategy.unique()) == sorted(strategies) and set(record.score_name) == {"accuracy"}
    assert len(curves) == len(strategies) * (n_tasks + 1) * n_tasks * (steps + 1)
    assert curves.score.between(0, 1).all()

    table = by_step(curves)
    for name in ("maml", "anil"):
        seen = table.loc[(name, 1, 0)]  # task 1 after meta-training on it
        assert seen[steps] > seen[0] + 0.2 and seen[steps] > 1 / ways + 0.3, (name, seen.to_dict())
    prototypes = table.loc["protomem"]
    assert (prototypes.nunique(axis=1) == 1).all()  # no steps: its curve is flat
    assert (prototypes.xs(1, level="after_task")[0] > 1 / ways + 0.3).all()  # nearest prototype, no step
