"""Where `lifelong.adapt` takes the first inner step of a meta-batch on the shared weights: the two ways
side by side, over model sizes, so the threshold `SHARED_FIRST_STEP` can be checked on a machine.

    python benchmarks/bench_first_step.py            # ~1 min

Per case, one meta-gradient of `adapt.meta_loss` (second order unless said; forward, inner steps,
query loss, backward) on random data: `copies` with every task's own copy of the weights from the
start (the threshold set out of reach), `shared` with the first step on the shared weights under
`vmap(grad(...))` (threshold 0). Milliseconds per meta-gradient, the median of `--reps` timed blocks
of at least 0.3 s each, one torch thread; `default` says which way the engine's threshold picks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lifelong import adapt  # noqa: E402

# name, layer widths, tasks, support and query examples per task, inner steps, loss
CASES = [
    ("sinusoid MLP (Finn et al.)", [1, 40, 40, 1], 25, 10, 10, 1, "mse"),
    ("sinusoid MLP, 5 steps", [1, 40, 40, 1], 25, 10, 10, 5, "mse"),
    ("digits 5-way MLP 64-64", [64, 64, 64, 5], 32, 25, 25, 1, "ce"),
    ("MLP 256-64-64-10", [256, 64, 64, 10], 25, 20, 20, 1, "ce"),
    ("MLP 784-32-32-10", [784, 32, 32, 10], 25, 20, 20, 1, "ce"),
    ("MLP 784-64-64-10", [784, 64, 64, 10], 25, 20, 20, 1, "ce"),
    ("MLP 64-256-256-10", [64, 256, 256, 10], 25, 20, 20, 1, "ce"),
    ("MLP 784-128-128-10", [784, 128, 128, 10], 25, 20, 20, 1, "ce"),
    ("MLP 784-256-256-10 (FTML bench)", [784, 256, 256, 10], 25, 20, 20, 1, "ce"),
    ("MLP 784-256-256-10, 5 steps", [784, 256, 256, 10], 25, 20, 20, 5, "ce"),
]


def ms_per_meta_gradient(model, batch, loss_fn, steps: int, threshold: float, reps: int) -> float:
    adapt.SHARED_FIRST_STEP = threshold
    params = adapt.params_of(model)

    def once():
        loss = adapt.meta_loss(model, params, *batch, loss_fn=loss_fn, steps=steps, lr=0.01)
        torch.autograd.grad(loss, list(params.values()))

    once()
    blocks = []
    for _ in range(reps):
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < 0.3:
            once()
            n += 1
        blocks.append((time.perf_counter() - started) / n * 1e3)
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    threshold = adapt.SHARED_FIRST_STEP
    print(f"threshold: {threshold:,} entries in the per-task copies (tasks x adapted weights)\n")
    print("| case | tasks x weights | copies ms | shared ms | shared / copies | default |")
    print("|---|---:|---:|---:|---:|---|")
    for name, widths, n_tasks, n_support, n_query, steps, loss in CASES:
        torch.manual_seed(0)
        layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
        model = nn.Sequential(*layers)
        xs, xq = torch.randn(n_tasks, n_support, widths[0]), torch.randn(n_tasks, n_query, widths[0])
        if loss == "ce":
            ys, yq = torch.randint(widths[-1], (n_tasks, n_support)), torch.randint(widths[-1], (n_tasks, n_query))
        else:
            ys, yq = torch.randn(n_tasks, n_support, 1), torch.randn(n_tasks, n_query, 1)
        loss_fn = F.cross_entropy if loss == "ce" else F.mse_loss
        entries = n_tasks * sum(p.numel() for p in model.parameters())
        copies = ms_per_meta_gradient(model, (xs, ys, xq, yq), loss_fn, steps, float("inf"), args.reps)
        shared = ms_per_meta_gradient(model, (xs, ys, xq, yq), loss_fn, steps, 0, args.reps)
        print(f"| {name} | {entries:,} | {copies:.2f} | {shared:.2f} | {shared / copies:.2f} | "
              f"{'shared' if entries >= threshold else 'copies'} |", flush=True)
    adapt.SHARED_FIRST_STEP = threshold


if __name__ == "__main__":
    main()
