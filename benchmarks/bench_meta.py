"""Meta-learning benchmark: quality on Finn et al.'s sinusoids, speed against a bare per-task loop,
vmapped few-shot evaluation, and MAML's memory as the inner loop grows.

    python benchmarks/bench_meta.py                          # all four parts (quality takes minutes)
    python benchmarks/bench_meta.py --parts speed memory     # some parts
    python benchmarks/bench_meta.py --iterations 2000 --threads 1 --json results.json
    python benchmarks/bench_meta.py --device cuda --parts speed evaluation memory   # on a GPU

The setup is Finn et al. (2017), section 5.1: an MLP 1-40-40-1 with ReLU, sinusoids with
amplitude in [0.1, 5] and phase in [0, pi] on x in [-5, 5], K = 10 support and 10 query points
per task, one inner SGD step of 0.01 in meta-training, a meta-batch of 25 tasks, Adam 1e-3.
The engine's strategies run as a config would run them (`lifelong.strategies.*` on a
`sinusoid_family` segment); Finn et al. draw fresh functions every meta-batch, here a segment
holds 25 x iterations training functions, so no function is expected to repeat often.

1. quality: `--iterations` meta-iterations (default 10,000) of MAML, Meta-SGD, FOMAML and
   Reptile, then the mean MSE on 200 held-out sinusoids (10 support, 100 query points each)
   after 1 and after 10 inner steps of each learner's own step size.
2. speed: meta-iterations per second of the engine's `meta_step` (vmapped over the meta-batch)
   against a bare per-task Python loop (`torch.autograd.grad(create_graph=True)` over
   `functional_call`), both on the same pre-drawn meta-batches; the meta-gradients of the two
   are checked to agree on one meta-batch. Also `learn()`'s rate, episode sampling included.
3. evaluation: adaptation curves (10 steps) of 100 held-out tasks in one vmapped call against
   one call per task: wall time and peak memory.
4. memory: peak memory of one second-order MAML meta-iteration for 1, 5, 10 and 20 inner steps,
   and of first-order MAML and of second order under bfloat16 autocast (`amp`) for comparison.

Peak memory is what the torch CPU allocator holds at most during the measured call beyond what
it held before (from the profiler's allocation events; the figure `torch.cuda.max_memory_allocated`
gives on a GPU, and what `--device cuda` reports). Times are medians over `--reps` repetitions. Meta-SGD learns its step sizes for
one inner step (Li et al. 2017); where ten steps of them diverge the table says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from lifelong.evaluation.evaluator import evaluate_stream_few_shot
from lifelong.evaluation.fewshot import EvaluationSpec, support_set
from lifelong.models import ModelSpec
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.meta_base import MetaLearner
from lifelong.strategies.registry import strategy_class
from lifelong.streams.builders import build_stream
from lifelong.streams.episodic import episode_sampler
from lifelong.streams.spec import SinusoidFamilySpec
from lifelong.streams.task import Stream
from lifelong.training import NonFiniteLossError, TrainingSpec

SEED = 0
DEVICE = torch.device("cpu")  # --device sets it
K, QUERY, INNER_LR, META_BATCH, META_LR = 10, 10, 0.01, 25, 1e-3
HELD_OUT, HELD_OUT_QUERY, EVAL_STEPS = 200, 100, 10
FINN = {"inner_lr": INNER_LR, "inner_steps": 1, "meta_batch": META_BATCH, "shots": K}
PARAMS = {
    "maml": {**FINN, "queries": QUERY, "meta_lr": META_LR},
    "metasgd": {**FINN, "queries": QUERY, "meta_lr": META_LR},
    "fomaml": {**FINN, "queries": QUERY, "meta_lr": META_LR},
    "reptile": {**FINN, "inner_steps": 10, "outer_step": 1.0},  # the engine's defaults; Reptile needs steps
}


# =========================================================================== shared

def finn_stream(n_functions: int, test_functions: int = HELD_OUT) -> Stream:
    stream = build_stream(SinusoidFamilySpec(
        name="finn_sinusoids", builder="sinusoid_family", n_tasks=1, seed=SEED, functions_per_task=n_functions,
        points_per_function=K + QUERY, test_functions=test_functions, test_points_per_function=K + HELD_OUT_QUERY))
    return dataclasses.replace(stream, tasks=tuple(task.to(DEVICE) for task in stream.tasks))


def learner(name: str, stream: Stream, **params) -> MetaLearner:
    ctx = StrategyContext(stream, ModelSpec(type="mlp", hidden=[40, 40], activation="relu"), TrainingSpec(),
                          DEVICE, SEED, EvaluationSpec(mode="few-shot", shots=K, steps=EVAL_STEPS))
    strategy = strategy_class(name)({**PARAMS[name], **params})
    strategy.setup(ctx)
    return strategy


def synchronized(call: Callable[[], object]) -> None:
    """Run `call` and wait for the GPU work it queued, so wall time covers it."""
    call()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def median_time(call: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        synchronized(call)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_memory_mb(call: Callable[[], object]) -> float:
    """Most bytes the torch CPU allocator held during `call` beyond what it held before.

    Read from the profiler's allocation events, each of which carries the allocator's running
    total (torch's higher-level memory timeline crashes on vmapped code in torch 2.13). On a GPU,
    the CUDA allocator's own peak.
    """
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
        before = torch.cuda.memory_allocated(DEVICE)
        torch.cuda.reset_peak_memory_stats(DEVICE)
        synchronized(call)
        return (torch.cuda.max_memory_allocated(DEVICE) - before) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    allocations = []

    def walk(events) -> None:
        for event in events:
            if event.tag == _EventType.Allocation:
                fields = event.extra_fields
                allocations.append((event.start_time_ns, fields.total_allocated, fields.alloc_size))
            walk(event.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    if not allocations:
        return 0.0
    allocations.sort()
    before = allocations[0][1] - allocations[0][2]
    return (max(total for _, total, _ in allocations) - before) / 2**20


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


# =========================================================================== 1. quality

def held_out_mse(strategy: MetaLearner, task, held_out) -> list[float | str]:
    """Mean MSE after 0..EVAL_STEPS steps; "diverged" from the step where an adaptation blew up."""
    try:
        return list(evaluate_stream_few_shot(strategy, (task,), held_out, EVAL_STEPS)[0, :, 1])
    except NonFiniteLossError:
        one_step = evaluate_stream_few_shot(strategy, (task,), held_out, 1)[0, :, 1]
        return [*one_step, *["diverged"] * (EVAL_STEPS - 1)]


def quality(iterations: int) -> list[dict]:
    stream = finn_stream(META_BATCH * iterations)
    task = stream.tasks[0]
    held_out = [support_set(task, K, SEED)]
    results = []
    for name in ("maml", "metasgd", "fomaml", "reptile"):
        strategy = learner(name, stream, meta_steps=iterations)
        started = time.perf_counter()
        strategy.learn(task)
        seconds = time.perf_counter() - started
        mse = held_out_mse(strategy, task, held_out)
        results.append({"strategy": name, "iterations": iterations, "seconds": seconds, "mse_step0": mse[0],
                        "mse_step1": mse[1], "mse_step10": mse[EVAL_STEPS]})
    table(f"1. quality: mean MSE on {HELD_OUT} held-out sinusoids (K={K}, {HELD_OUT_QUERY} query points) "
          f"after {iterations} meta-iterations",
          ["strategy", "train s", "it/s", "MSE 0 steps", "MSE 1 step", "MSE 10 steps"],
          [[r["strategy"], r["seconds"], iterations / r["seconds"], r["mse_step0"], r["mse_step1"], r["mse_step10"]]
           for r in results])
    return results


# =========================================================================== 2. speed

def bare_maml_gradients(model: torch.nn.Module, params: dict, batch, first_order: bool) -> list[torch.Tensor]:
    """The meta-gradient of one meta-batch, one task at a time: what the engine replaces."""
    xs, ys, xq, yq = batch
    losses = []
    for t in range(len(xs)):
        support_loss = F.mse_loss(functional_call(model, params, (xs[t],)), ys[t])
        grads = torch.autograd.grad(support_loss, list(params.values()), create_graph=not first_order)
        fast = {k: p - INNER_LR * g for (k, p), g in zip(params.items(), grads)}
        losses.append(F.mse_loss(functional_call(model, fast, (xq[t],)), yq[t]))
    return list(torch.autograd.grad(torch.stack(losses).mean(), list(params.values())))


def bare_reptile_gradients(model: torch.nn.Module, params: dict, batch, steps: int) -> list[torch.Tensor]:
    """theta - mean(phi) of one meta-batch, one task at a time."""
    xs, ys = batch[:2]
    total = [torch.zeros_like(p) for p in params.values()]
    for t in range(len(xs)):
        fast = {k: p.detach().requires_grad_() for k, p in params.items()}
        for _ in range(steps):
            loss = F.mse_loss(functional_call(model, fast, (xs[t],)), ys[t])
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {k: (p - INNER_LR * g).detach().requires_grad_() for (k, p), g in zip(fast.items(), grads)}
        total = [s + f.detach() for s, f in zip(total, fast.values())]
    return [p.detach() - s / len(xs) for p, s in zip(params.values(), total)]


def bare_step(name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    if name == "reptile":
        grads = bare_reptile_gradients(model, params, batch, PARAMS["reptile"]["inner_steps"])
    else:
        grads = bare_maml_gradients(model, params, batch, first_order=name == "fomaml")
    for p, g in zip(params.values(), grads):
        p.grad = g
    optimizer.step()
    return grads


def engine_gradients(strategy: MetaLearner, batch) -> list[torch.Tensor]:
    """The meta-gradient the strategy's own `meta_step` computes (its update is undone)."""
    saved = {k: v.clone() for k, v in strategy.model.state_dict().items()}
    strategy.meta_step(batch, F.mse_loss)
    grads = [p.grad.clone() for p in strategy.model.parameters()]
    strategy.model.load_state_dict(saved)
    return grads


def speed(iterations: int, reps: int) -> list[dict]:
    stream = finn_stream(META_BATCH * iterations, test_functions=1)
    task = stream.tasks[0]
    results = []
    for name in ("maml", "fomaml", "reptile"):
        strategy = learner(name, stream, meta_steps=iterations)
        query = 0 if name == "reptile" else QUERY
        sample = episode_sampler(task, K, query, "bench")
        draw = torch.Generator(DEVICE).manual_seed(SEED)
        batches = [sample(META_BATCH, draw) for _ in range(iterations)]

        bare_model = strategy.ctx.new_model()
        bare_optimizer = type(strategy.optimizer)(bare_model.parameters(), **strategy.optimizer.defaults)
        reference = bare_step(name, bare_model, bare_optimizer, batches[0])
        bare_model.load_state_dict(strategy.model.state_dict())
        engine = engine_gradients(strategy, batches[0])
        for ours, theirs in zip(engine, reference):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
        max_diff = max(float((a - b).abs().max()) for a, b in zip(engine, reference))

        times = {"engine": [], "bare": [], "learn": []}
        for _ in range(reps):  # interleaved: the machine's load changes over time
            times["engine"].append(median_time(lambda: [strategy.meta_step(b, F.mse_loss) for b in batches], 1))
            times["bare"].append(median_time(lambda: [bare_step(name, bare_model, bare_optimizer, b)
                                                      for b in batches], 1))
            times["learn"].append(median_time(lambda: strategy.learn(task), 1))
        rate = {k: iterations / statistics.median(v) for k, v in times.items()}
        results.append({"strategy": name, "inner_steps": strategy.params.inner_steps, "engine_it_s": rate["engine"],
                        "bare_it_s": rate["bare"], "speedup": rate["engine"] / rate["bare"],
                        "learn_it_s": rate["learn"], "max_grad_diff": max_diff})
    table(f"2. speed: meta-iterations/s, meta-batch {META_BATCH}, K={K}, {torch.get_num_threads()} thread(s), "
          f"{iterations} iterations x {reps} reps (median)",
          ["strategy", "inner steps", "engine (vmap)", "bare loop", "speed-up", "learn() incl. sampling",
           "max |grad diff|"],
          [[r["strategy"], r["inner_steps"], r["engine_it_s"], r["bare_it_s"], f"{r['speedup']:.1f}x", r["learn_it_s"],
            f"{r['max_grad_diff']:.1e}"] for r in results])
    return results


# =========================================================================== 3. evaluation

def evaluation(reps: int, n_tasks: int = 100) -> dict:
    stream = finn_stream(META_BATCH, test_functions=n_tasks)
    strategy = learner("maml", stream)
    held_out = support_set(stream.tasks[0], K, SEED)
    tasks, supports = list(held_out.tasks), held_out.supports

    def vmapped():
        return strategy.adaptation_curves(tasks, supports, EVAL_STEPS)

    def one_by_one():
        return [strategy.adaptation_curve(t, s, EVAL_STEPS) for t, s in zip(tasks, supports)]

    torch.testing.assert_close(torch.stack(vmapped()), torch.stack(one_by_one()), rtol=1e-5, atol=1e-5)
    result = {"tasks": n_tasks, "steps": EVAL_STEPS}
    for label, call in (("vmapped", vmapped), ("one_by_one", one_by_one)):
        result[f"{label}_seconds"] = median_time(call, reps)
        result[f"{label}_peak_mb"] = peak_memory_mb(call)
    table(f"3. few-shot evaluation: {n_tasks} tasks, {EVAL_STEPS} steps, curves at every step",
          ["mode", "seconds", "peak MB"],
          [[label, result[f"{label}_seconds"], result[f"{label}_peak_mb"]] for label in ("vmapped", "one_by_one")])
    return result


# =========================================================================== 4. memory

def memory(reps: int) -> list[dict]:
    stream = finn_stream(META_BATCH * 10, test_functions=1)
    batch = episode_sampler(stream.tasks[0], K, QUERY, "bench")(META_BATCH, torch.Generator(DEVICE).manual_seed(SEED))
    results = []
    for first_order, amp in ((False, "off"), (True, "off"), (False, "bfloat16")):
        for steps in (1, 5, 10, 20):
            strategy = learner("maml", stream, inner_steps=steps, first_order=first_order, amp=amp)

            def step():
                return strategy.meta_step(batch, F.mse_loss)

            step()  # the optimizer's state is allocated once, before measuring
            results.append({"first_order": first_order, "amp": amp, "inner_steps": steps,
                            "peak_mb": peak_memory_mb(step), "ms_per_iteration": 1000 * median_time(step, reps)})
    table(f"4. memory: one MAML meta-iteration (meta-batch {META_BATCH}, K={K}, {QUERY} query points)",
          ["order", "amp", "inner steps", "peak MB", "ms/iteration"],
          [["first" if r["first_order"] else "second", r["amp"], r["inner_steps"], r["peak_mb"], r["ms_per_iteration"]]
           for r in results])
    return results


PARTS = ("quality", "speed", "evaluation", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--iterations", type=int, default=10_000, help="meta-iterations of the quality run")
    parser.add_argument("--speed-iterations", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} thread(s)")
    calls = {"quality": lambda: quality(args.iterations), "speed": lambda: speed(args.speed_iterations, args.reps),
             "evaluation": lambda: evaluation(args.reps), "memory": lambda: memory(args.reps)}
    results = {part: calls[part]() for part in args.parts}
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": args.threads, "device": str(DEVICE), "torch": torch.__version__, **results}, out, indent=2, default=float)


if __name__ == "__main__":
    main()
