"""Engine-core benchmark: the engine's overhead against bare PyTorch loops doing the same work.

    python benchmarks/bench_core.py                      # 3 interleaved repetitions, 1 torch thread
    python benchmarks/bench_core.py --reps 5 --ab-rounds 4 --json out.json
    python benchmarks/bench_core.py --render out.json    # the tables again, from saved measurements
    python benchmarks/bench_core.py --skip-quickstart --ab-rounds 0   # Fashion-MNIST comparison only

Measures, each variant in its own subprocess (so max RSS is per variant) and interleaved over
repetitions (the machine is noisy; medians are reported):

* the quickstart: wall time of the CLI command `lifelong run configs/quickstart.yaml` and of the
  in-process `run_experiment` on the same config (each repetition with an empty reference cache,
  `references.cache_dir=<temp>`, as on a first run, and its run folder in a temp folder);
* split Fashion-MNIST, 5 tasks x 2 classes, class-incremental, MLP 784-256-256-10, SGD lr 0.01,
  batch 32, 1 epoch per task, all 5 tasks evaluated on their full test sets (2000 images each)
  before training and after every task:
    - engine `naive`, `replay`, `ewc` (and `joint`, for metrics) via `lifelong.run.run_experiment`;
    - a bare PyTorch fine-tuning loop (`bare-naive`): same init, same batches, same evaluations;
    - bare hand-written replay and EWC loops doing the same algorithm as the engine's, so the
      engine's overhead for those strategies is shown apart from the algorithms' own cost.
  The bare loops import nothing from `lifelong` (seeds are re-derived here with the engine's
  formula, so the batches match); their accuracy matrices are compared with the engine's.
  The engine runs here with `references.enabled: false` (the reference learners are extra
  trainings the bare loops do not do); `engine-naive+refs` runs once with them, cold cache;
* an in-process A/B of the loops alone (engine `play` inside run_experiment vs the bare loop,
  alternating in one process), the least noisy view of the per-step overhead.

Every variant pins torch to `--threads` intra-op threads (default 1; OMP/MKL_NUM_THREADS too):
on a shared 2-core machine 2 OpenMP threads made the same loop 15-20x slower when other jobs ran.

Times (wall clock unless marked CPU): `run` = in-process, from the IDX files on disk to the
finished record and metrics (engine: the whole `run_experiment`, run folder, checkpoints and
report included) = `prepare` (data, stream, model, optimizer) + `loop` (training and the six
evaluations; engine: `play`, from its first callback to its last) + `finish` (engine: metrics
and report files). `CPU` = process CPU time of the same spans (one torch thread, so it is the
work done, and it is less disturbed than wall time when other jobs share the machine);
`process` = the subprocess from spawn to exit (interpreter start and imports included).
Ratios are taken per repetition (engine and bare ran back to back) and their median reported.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIFELONG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
MARK = "@@BENCH@@"

SEED = 0
N_TASKS, CLASSES_PER_TASK = 5, 2
HIDDEN = (256, 256)
LR, BATCH, EPOCHS = 0.01, 32, 1
REPLAY = {"buffer_size": 200}                                     # the engine's defaults, spelled out
EWC = {"lambda": 100.0, "mode": "separate", "fisher_samples": 512}
FISHER_CHUNK = 256                                                # EWC._fisher's chunk
TEST_PER_TASK = 2000                                              # 1000 test images per class

TIMED = ("engine-naive", "bare-naive", "engine-replay", "bare-replay", "engine-ewc", "bare-ewc")
ONCE = ("engine-joint", "engine-naive+refs")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# =========================================================================== engine variants

def has_references() -> bool:
    """Whether this engine version trains reference learners after the run (the `references:` section)."""
    from lifelong.config import ExperimentConfig
    return "references" in ExperimentConfig.model_fields


def engine_config(strategy: str, references_cache: str | None = None) -> dict:
    """The benchmark stream as a config. References (extra independent/joint trainings that the bare
    loops do not do) are off unless `references_cache` names a (cold) cache folder."""
    params = {"replay": REPLAY, "ewc": EWC}.get(strategy, {})
    extra = {}
    if has_references():
        extra["references"] = ({"enabled": False} if references_cache is None
                               else {"enabled": True, "cache_dir": references_cache})
    return {**extra,
        "name": f"bench-{strategy}",
        "stream": {"name": "split_fashion_mnist", "builder": "split", "dataset": "fashion_mnist",
                   "data_root": str(DATA), "scenario": "class-il", "n_tasks": N_TASKS,
                   "classes_per_task": CLASSES_PER_TASK, "seed": SEED},
        "model": {"type": "mlp", "hidden": list(HIDDEN)},
        "training": {"epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "optimizer": "sgd"},
        "strategies": [{"name": strategy, "params": params}],
        "seeds": [SEED],
        "device": "cpu",
    }


def child_engine(strategy: str, profile: str | None) -> dict:
    t0 = time.perf_counter()
    from lifelong.callbacks import Callback
    from lifelong.config import ExperimentConfig
    from lifelong.evaluation import metrics
    from lifelong.run import run_experiment
    t_import = time.perf_counter() - t0
    strategy, _, with_refs = strategy.partition("+")

    class Clock(Callback):
        def on_run_start(self, stream, record):
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_run_end(self, record):
            self.end, self.cpu_end = time.perf_counter(), time.process_time()

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-core-") as out:
        config = ExperimentConfig.model_validate(engine_config(strategy, f"{out}/cache" if with_refs else None))
        if profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        t1, c1 = time.perf_counter(), time.process_time()
        result = run_experiment(config, out=out, callbacks=[clock], progress=False)
        t_run, c_run = time.perf_counter() - t1, time.process_time() - c1
        if profile:
            profiler.disable()
            profiler.dump_stats(profile)
    record = result.records[0]
    R = record.scores
    return {"run": t_run, "loop": clock.end - clock.start, "train": float(record.train_seconds.sum()),
            "prepare": clock.start - t1, "finish": t1 + t_run - clock.end,
            "cpu_run": c_run, "cpu_loop": clock.cpu_end - clock.cpu_start, "import": t_import, "rss_mb": max_rss_mb(), "scores": record.scores.tolist(),
            "metrics": {"acc": metrics.acc(R), "learning_acc": metrics.learning_acc(R), "bwt": metrics.bwt(R),
                        "fwt": metrics.fwt(R), "forgetting": metrics.forgetting(R)}}


def child_quickstart() -> dict:
    t0 = time.perf_counter()
    from lifelong.config import load_config
    from lifelong.run import run_experiment
    t_import = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench-core-qs-") as out:
        t1 = time.perf_counter()
        config = load_config(REPO / "configs" / "quickstart.yaml", quickstart_overrides(out))
        run_experiment(config, out=out, progress=False)
        t_run = time.perf_counter() - t1
    return {"run": t_run, "import": t_import, "rss_mb": max_rss_mb()}


# =========================================================================== bare loops
# Plain torch + numpy. The seed formula is the engine's (lifelong.seeding.derive_seed), written
# out so that the bare loops get the same init, the same task order and the same batches.

PURPOSE = {"task": 1, "init": 2, "shuffle": 3, "buffer": 4}


def derive_seed(seed: int, purpose: str, *index: int) -> int:
    import numpy as np
    state = np.random.SeedSequence([seed, PURPOSE[purpose], *index]).generate_state(2, np.uint64)[0]
    return int(state >> np.uint64(1))


def read_idx(path: Path):
    import numpy as np
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def bare_tasks():
    """Split Fashion-MNIST: per task (x_train, y_train, x_test, y_test), in the engine's order."""
    import numpy as np
    import torch

    def load(stem):
        path = next(p for p in (DATA / stem, DATA / f"{stem}.gz") if p.is_file())
        return read_idx(path)

    x_tr = torch.from_numpy(load("train-images-idx3-ubyte").copy()).float().div_(255).unsqueeze(1)
    y_tr = torch.from_numpy(load("train-labels-idx1-ubyte").astype(np.int64))
    x_te = torch.from_numpy(load("t10k-images-idx3-ubyte").copy()).float().div_(255).unsqueeze(1)
    y_te = torch.from_numpy(load("t10k-labels-idx1-ubyte").astype(np.int64))
    tasks = []
    for t in range(N_TASKS):
        classes = list(range(t * CLASSES_PER_TASK, (t + 1) * CLASSES_PER_TASK))
        rng = np.random.default_rng(derive_seed(SEED, "task", t))
        tr = torch.from_numpy(rng.permutation(np.flatnonzero(np.isin(y_tr.numpy(), classes))))
        te = torch.from_numpy(rng.permutation(np.flatnonzero(np.isin(y_te.numpy(), classes))))
        tasks.append((x_tr[tr], y_tr[tr], x_te[te], y_te[te]))
    return tasks


def bare_model():
    import torch
    from torch import nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(SEED, "init", 0))
        return nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN[0]), nn.ReLU(),
                             nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(), nn.Linear(HIDDEN[1], 10))


def bare_evaluate(model, tasks) -> list[float]:
    import torch
    import torch.nn.functional as F
    model.eval()
    row = []
    with torch.no_grad():
        for _, _, x, y in tasks:
            out = model(x)
            F.cross_entropy(out, y, reduction="sum")  # the engine records the test loss too
            row.append(float((out.argmax(1) == y).sum()) / len(y))
    return row


def child_bare(strategy: str) -> dict:
    import torch

    t0, c0 = time.perf_counter(), time.process_time()
    tasks = bare_tasks()
    model = bare_model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    t_loop, c_loop = time.perf_counter(), time.process_time()
    scores, train = bare_loop(strategy, tasks, model, opt)
    t_end, c_end = time.perf_counter(), time.process_time()
    return {"run": t_end - t0, "loop": t_end - t_loop, "train": train, "import": 0.0,
            "prepare": t_loop - t0, "finish": 0.0,
            "cpu_run": c_end - c0, "cpu_loop": c_end - c_loop,
            "rss_mb": max_rss_mb(), "scores": scores}


def bare_loop(strategy: str, tasks, model, opt) -> tuple[list[list[float]], float]:
    """Evaluate, then per task: train one epoch (plus replay / EWC), evaluate. Returns (scores, train s)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    train = 0.0
    scores = [bare_evaluate(model, tasks)]
    buf_x = buf_y = None
    seen = 0
    sums = None
    for t, (x, y, _, _) in enumerate(tasks):
        t_train = time.perf_counter()
        model.train()
        shuffle = torch.Generator().manual_seed(derive_seed(SEED, "shuffle", t))
        replaying = strategy == "replay" and buf_x is not None
        if replaying:
            draw = torch.Generator().manual_seed(derive_seed(SEED, "buffer", t, 1))
            filled = min(seen, REPLAY["buffer_size"])
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(x), generator=shuffle).split(BATCH):
                if replaying:
                    pick = torch.randint(filled, (BATCH,), generator=draw)
                    loss = F.cross_entropy(model(torch.cat([x[idx], buf_x[pick]])), torch.cat([y[idx], buf_y[pick]]))
                else:
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if strategy == "ewc" and sums is not None:  # penalty gradient lambda*(S*theta - M), added directly
                    with torch.no_grad():
                        for p, s, m in zip(model.parameters(), *sums[:2]):
                            p.grad.add_(torch.addcmul(-m, s, p), alpha=EWC["lambda"])
                opt.step()
        if strategy == "replay":  # reservoir sampling over the task's examples, then write the buffer
            rng = np.random.default_rng(derive_seed(SEED, "buffer", t))
            order = rng.permutation(len(x))
            cap, slots = REPLAY["buffer_size"], {}
            for offset, example in enumerate(order):
                pos = seen + offset
                slot = pos if pos < cap else int(rng.integers(0, pos + 1))
                if slot < cap:
                    slots[slot] = int(example)
            seen += len(order)
            if buf_x is None:
                buf_x, buf_y = x.new_zeros((cap, *x.shape[1:])), y.new_zeros((cap,))
            where, which = torch.tensor(list(slots)), torch.tensor(list(slots.values()))
            buf_x[where], buf_y[where] = x[which], y[which]
        if strategy == "ewc" and t + 1 < len(tasks):  # diagonal empirical Fisher, none after the last task
            # per Linear layer, the sum over examples of squared per-example gradients g_i a_i^T is (g^2)^T (a^2)
            n = min(EWC["fisher_samples"], len(x))
            fisher = [torch.zeros_like(p) for p in model.parameters()]
            model.eval()
            for start in range(0, n, FISHER_CHUNK):
                xs, ys = x[start:start + FISHER_CHUNK], y[start:start + FISHER_CHUNK]
                inputs, outputs, h = [], [], xs
                for module in model:
                    h_in, h = h, module(h)
                    if isinstance(module, torch.nn.Linear):
                        inputs.append(h_in)
                        outputs.append(h)
                delta = F.softmax(h.detach(), 1) - F.one_hot(ys, h.shape[1])  # per-example d loss / d logits
                grads = torch.autograd.grad(h, outputs, delta)
                for i, (a, g) in enumerate(zip(inputs, grads)):
                    fisher[2 * i] += g.square().T @ a.square()
                    fisher[2 * i + 1] += g.square().sum(0)
            fisher = [f / n for f in fisher]
            anchor = [p.detach().clone() for p in model.parameters()]
            new = (fisher, [f * a for f, a in zip(fisher, anchor)], [f * a ** 2 for f, a in zip(fisher, anchor)])
            sums = new if sums is None else tuple([o + n_ for o, n_ in zip(old, nw)] for old, nw in zip(sums, new))
        train += time.perf_counter() - t_train
        scores.append(bare_evaluate(model, tasks))
    return scores, train


def child_ab(strategy: str, rounds: int) -> dict:
    """Loop overhead, A/B in one process: `rounds` x (engine run_experiment, bare loop), alternating.

    Only the loops are compared (engine: `play`'s span inside run_experiment, run-folder writes of
    each evaluation and task included; bare: `bare_loop`), so the data is loaded once, torch is
    warm, and both halves of a pair see the same machine load within seconds of each other.
    """
    import torch
    from lifelong.callbacks import Callback
    from lifelong.config import ExperimentConfig
    from lifelong.run import run_experiment

    class Clock(Callback):
        def on_run_start(self, stream, record):
            self.start = (time.perf_counter(), time.process_time())

        def on_run_end(self, record):
            self.end = (time.perf_counter(), time.process_time())

    config = ExperimentConfig.model_validate(engine_config(strategy))
    tasks = bare_tasks()
    pairs = []
    for i in range(rounds + 1):  # round 0 warms both up and is not counted
        pair = {}
        for side in (("engine", "bare") if i % 2 == 0 else ("bare", "engine")):
            if side == "engine":
                clock = Clock()
                with tempfile.TemporaryDirectory(prefix="bench-core-ab-") as out:
                    run_experiment(config, out=out, callbacks=[clock], progress=False)
                pair["engine"] = [b - a for a, b in zip(clock.start, clock.end)]
            else:
                model = bare_model()
                opt = torch.optim.SGD(model.parameters(), lr=LR)
                start = (time.perf_counter(), time.process_time())
                bare_loop(strategy, tasks, model, opt)
                pair["bare"] = [b - a for a, b in zip(start, (time.perf_counter(), time.process_time()))]
        if i:
            pairs.append(pair)
    return {"pairs": pairs, "rss_mb": max_rss_mb()}


# =========================================================================== driver

def run_child(variant: str, threads: int, profile: str | None = None, ab_rounds: int = 0) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", variant, "--threads", str(threads), "--ab-rounds", str(ab_rounds)]
    if profile:
        cmd += ["--profile", profile]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith(MARK))
    return {**json.loads(line[len(MARK):]), "proc": wall}


def quickstart_overrides(folder: str) -> list[str]:
    """A cold reference cache in `folder` for every quickstart repetition (a first run, as a new user sees it)."""
    return [f"references.cache_dir={folder}/cache"] if has_references() else []


def run_cli(threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cli = Path(sys.executable).with_name("lifelong")
    with tempfile.TemporaryDirectory(prefix="bench-core-cli-") as out:
        start = time.perf_counter()
        done = subprocess.run([str(cli), "run", "configs/quickstart.yaml", *quickstart_overrides(out),
                               "--out", f"{out}/run"], env=env, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"lifelong run failed:\n{done.stderr[-4000:]}")
    return wall


def med(values) -> float:
    return statistics.median(values)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def driver(args) -> None:
    """Measure everything, then print the tables (and keep the raw measurements with --json)."""
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {v: [] for v in (*TIMED, *ONCE, "quickstart-inproc")}
    cli_walls: list[float] = []
    for rep in range(args.reps):
        order = TIMED if rep % 2 == 0 else TIMED[::-1]  # alternate the order: no variant always goes first
        for variant in order:
            runs[variant].append(run_child(variant, args.threads))
            r = runs[variant][-1]
            print(f"  rep {rep + 1}/{args.reps} {variant:14s} run {r['run']:7.2f}s  loop {r['loop']:7.2f}s  "
                  f"rss {r['rss_mb']:6.0f} MB", file=sys.stderr, flush=True)
        if not args.skip_quickstart:
            cli_walls.append(run_cli(args.threads))
            runs["quickstart-inproc"].append(run_child("quickstart-inproc", args.threads))
            print(f"  rep {rep + 1}/{args.reps} quickstart     cli {cli_walls[-1]:7.2f}s  in-process "
                  f"{runs['quickstart-inproc'][-1]['run']:7.2f}s", file=sys.stderr, flush=True)
    for variant in ONCE:
        runs[variant].append(run_child(variant, args.threads))
    ab = {}
    if args.ab_rounds:
        for strategy in ("naive", "replay", "ewc"):
            ab[strategy] = run_child(f"ab-{strategy}", args.threads, ab_rounds=args.ab_rounds)
            print(f"  A/B {strategy}: {ab[strategy]['pairs']}", file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])
    data = {"runs": runs, "cli": cli_walls, "ab": ab, "threads": args.threads, "reps": args.reps,
            "ab_rounds": args.ab_rounds, "load_average": load}
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    print(render(data))


def render(data: dict) -> str:
    """The result tables (markdown) from the raw measurements."""
    import numpy as np
    import torch
    runs, cli_walls, ab = data["runs"], data["cli"], data["ab"]

    keys = ("run", "prepare", "loop", "finish", "cpu_run", "cpu_loop", "train", "proc", "rss_mb", "import")
    summary = {v: {k: med([r[k] for r in rs]) for k in keys} for v, rs in runs.items()
               if rs and v != "quickstart-inproc"}

    def paired(num: str, den: str, key: str) -> list[float]:
        """Per-repetition ratios (the two ran minutes apart at most), so slow phases of the machine cancel."""
        return [a[key] / b[key] for a, b in zip(runs[num], runs[den])]

    def counts(variant: str):  # correct answers per (row, task): the accuracy matrix without float rounding
        return np.rint(np.array(runs[variant][0]["scores"]) * TEST_PER_TASK).astype(int)

    lines = []
    out = lines.append
    out(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, no GPU used; python {platform.python_version()}, "
        f"torch {torch.__version__}, torch threads {data['threads']} (OMP/MKL too); "
        f"{data['reps']} interleaved repetitions, medians; 1-min load average "
        f"{' -> '.join(f'{x:.1f}' for x in data.get('load_average', []))} (start -> end)")
    out("")
    out("Split Fashion-MNIST 5 tasks x 2 classes, class-IL, MLP 784-256-256-10, SGD lr 0.01, batch 32, 1 epoch/task "
        "(375 steps/task), 6 evaluations of 5 x 2000 test images")
    out("")
    out("| variant | run s | = prepare | + loop | + finish | run CPU s | loop CPU s | process s | max RSS MB |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in (*TIMED, *ONCE):
        m = summary[v]
        out(f"| {v}{' (1 run)' if v in ONCE else ''} | {m['run']:.2f} | {m['prepare']:.2f} | {m['loop']:.2f} | "
            f"{m['finish']:.2f} | {m['cpu_run']:.2f} | {m['cpu_loop']:.2f} | {m['proc']:.2f} | {m['rss_mb']:.0f} |")
    out("")
    out("| ratio (median of per-rep ratios [min-max]) | run | loop | run CPU | loop CPU | RSS diff MB | goal |")
    out("|---|---:|---:|---:|---:|---:|---|")
    for num, den, goal in (("engine-naive", "bare-naive", "<= 1.15, < +300 MB"),
                           ("engine-replay", "bare-naive", "<= 1.5"), ("engine-ewc", "bare-naive", "<= 1.5"),
                           ("engine-replay", "bare-replay", "(engine overhead only)"),
                           ("engine-ewc", "bare-ewc", "(engine overhead only)"),
                           ("bare-replay", "bare-naive", "(the algorithm's own cost)"),
                           ("bare-ewc", "bare-naive", "(the algorithm's own cost)")):
        cells = []
        for key in ("run", "loop", "cpu_run", "cpu_loop"):
            ratios = paired(num, den, key)
            cells.append(f"{med(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]")
        diff = summary[num]["rss_mb"] - summary[den]["rss_mb"]
        out(f"| {num} / {den} | {' | '.join(cells)} | {diff:+.0f} | {goal} |")
    out("")
    out("engine vs bare, correct answers per (row, task) of the 6x5 accuracy matrix: " + ", ".join(
        f"{s}: {'identical' if np.array_equal(counts(f'engine-{s}'), counts(f'bare-{s}')) else 'DIFFERENT'}"
        for s in ("naive", "replay", "ewc")))
    out("same matrix in every repetition: " + ", ".join(
        f"{v}: {all(r['scores'] == rs[0]['scores'] for r in rs)}" for v, rs in runs.items() if rs and "scores" in rs[0]))
    out(f"engine import (import lifelong.run etc., torch already loaded): {summary['engine-naive']['import']:.2f} s")
    if ab:
        out("")
        out(f"In-process A/B of the loops alone ({data['ab_rounds']} alternating engine/bare pairs in one process "
            "after a warm-up pair; data loaded once): engine loop / bare loop, median [min-max]")
        out("")
        out("| strategy | wall | CPU |")
        out("|---|---:|---:|")
        for strategy, res in ab.items():
            cells = []
            for i in (0, 1):
                ratios = [p["engine"][i] / p["bare"][i] for p in res["pairs"]]
                cells.append(f"{med(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]")
            out(f"| {strategy} | {' | '.join(cells)} |")
    out("")
    out("Metrics on that stream (lifelong.evaluation.metrics via run_experiment, seed 0; "
        f"replay buffer {REPLAY['buffer_size']}, EWC lambda {EWC['lambda']:g} {EWC['mode']}):")
    out("")
    out("| strategy | ACC | learning ACC | BWT | FWT | forgetting |")
    out("|---|---:|---:|---:|---:|---:|")
    for strategy in ("naive", "replay", "ewc", "joint"):
        m = runs[f"engine-{strategy}"][0]["metrics"]
        out(f"| {strategy} | {m['acc']:.4f} | {m['learning_acc']:.4f} | {m['bwt']:.4f} | {m['fwt']:.4f} | "
            f"{m['forgetting']:.4f} |")
    if cli_walls:
        qs = runs["quickstart-inproc"]
        cli_reps = ", ".join(f"{w:.2f}" for w in cli_walls)
        qs_reps = ", ".join(f"{r['run']:.2f}" for r in qs)
        out("")
        out(f"quickstart (configs/quickstart.yaml): CLI `lifelong run` wall {med(cli_walls):.2f} s (reps: {cli_reps}); "
            f"in-process run_experiment {med([r['run'] for r in qs]):.2f} s (reps: {qs_reps}), "
            f"import {med([r['import'] for r in qs]):.2f} s, max RSS {med([r['rss_mb'] for r in qs]):.0f} MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every variant")
    parser.add_argument("--skip-quickstart", action="store_true")
    parser.add_argument("--ab-rounds", type=int, default=4,
                        help="in-process A/B loop comparison: engine/bare pairs per strategy (0: skip)")
    parser.add_argument("--json", help="also write every measurement here")
    parser.add_argument("--render", metavar="JSON", help="only print the tables of a --json file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="with --child engine-*: cProfile the run into this file")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    if args.child is None:
        driver(args)
        return
    import torch
    torch.set_num_threads(args.threads)
    kind, _, strategy = args.child.partition("-")
    if args.child == "quickstart-inproc":
        result = child_quickstart()
    elif kind == "ab":
        result = child_ab(strategy, args.ab_rounds)
    elif kind == "engine":
        result = child_engine(strategy, args.profile)
    else:
        result = child_bare(strategy)
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
