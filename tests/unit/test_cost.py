"""Cost accounting (lifelong.cost): counted FLOPs against hand counts, sampled = full counts, exact
counters, per-task peak memory, energy backends and their labels, and the efficiency metrics."""

import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from lifelong.cost import energy, flops
from lifelong.cost.memory import TaskPeakMemory
from lifelong.config import load_config
from lifelong.cost.meter import pass_flops
from lifelong.errors import ConfigError
from lifelong.evaluation import efficiency
from lifelong.evaluation.efficiency import Costs
from lifelong.evaluation.registry import METRICS
from lifelong.orchestrator import play
from lifelong.strategies.der import DER
from lifelong.strategies.ewc import EWC
from lifelong.strategies.ftml import FTML
from lifelong.strategies.generative_replay import GenerativeReplay
from lifelong.strategies.icarl import ICaRL
from lifelong.strategies.lamaml import LaMAML
from lifelong.strategies.maml import MAML
from lifelong.strategies.mer import MER
from lifelong.strategies.naive import Naive
from lifelong.strategies.replay import Replay
from lifelong.streams.task import Task
from lifelong.training import TrainingSpec, fit, make_optimizer
from tests.conftest import blob_stream, context

IN, H1, H2, OUT, BATCH = 20, 8, 6, 3, 4


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU(), nn.Linear(H2, OUT))


# Hand counts, FlopCounterMode's convention (a multiply-add = 2 FLOPs, matrix products only):
# a linear forward is 2*B*in*out; its backward computes the weight gradient (2*B*in*out) and the input
# gradient (2*B*in*out), except in the first layer, whose input needs no gradient.
FORWARD = 2 * BATCH * (IN * H1 + H1 * H2 + H2 * OUT)  # 1808
BACKWARD = 2 * FORWARD - 2 * BATCH * IN * H1  # 3616 - 1280 = 2336


def one_step(model, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()


def test_mlp_flops_match_the_hand_count():
    model, x, y = mlp(), torch.randn(BATCH, IN), torch.randint(0, OUT, (BATCH,))
    meter = flops.FlopMeter(sampled=False)
    with meter.span():
        one_step(model, x, y)
    assert meter.flops == FORWARD + BACKWARD == 4144
    with meter.span(), torch.no_grad():
        model(x)
    assert meter.flops == FORWARD  # evaluation: forward only


def blob_task(n: int) -> Task:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, IN, generator=g), torch.randint(0, OUT, (n,), generator=g)
    return Task(0, "T1", "classification", x, y, x, y, classes=tuple(range(OUT)))


@pytest.mark.parametrize("sampled", [True, False])
def test_fit_counts_steps_samples_and_flops_exactly(sampled):
    """n = 10 examples, batch 4, 3 epochs: per epoch two steps of 4 and one of 2."""
    task, model = blob_task(10), mlp()
    spec = TrainingSpec(epochs=3, batch_size=BATCH, lr=0.1)
    meter = flops.FlopMeter(sampled=sampled)
    with meter.span():
        fit(model, make_optimizer(model.parameters(), spec), task, spec, torch.Generator().manual_seed(0), None)
    assert meter.marked_steps == 9 and meter.samples == 30
    per_example = (FORWARD + BACKWARD) // BATCH  # every count is linear in the batch size
    assert meter.flops == 3 * 10 * per_example
    if sampled:  # per batch size, two steps counted, the rest copies of the first
        assert {k: (c.steps, c.copies) for k, c in meter._per_key.items()} == {(1, 4): (2, 4), (1, 2): (2, 1)}


def test_a_key_whose_steps_differ_has_every_step_counted():
    """Under one key, step i multiplies an (i+1) x 4 matrix by a 4 x 4 one (a buffer filling up)."""
    meter = flops.FlopMeter(sampled=True)
    with meter.span(), flops.loop():
        for i in range(5):
            with flops.step("same key", 1):
                torch.ones(i + 1, 4) @ torch.ones(4, 4)
    assert meter.flops == sum(2 * (i + 1) * 4 * 4 for i in range(5))


def test_a_key_whose_work_settles_is_counted_until_two_steps_agree():
    """Rows 1, 2, 3, 3, 3, 3: the steps are counted until the fourth equals the third, then copied."""
    meter = flops.FlopMeter(sampled=True)
    with meter.span(), flops.loop():
        for rows in (1, 2, 3, 3, 3, 3):
            with flops.step("same key", 1):
                torch.ones(rows, 4) @ torch.ones(4, 4)
    assert meter.flops == 2 * 4 * 4 * (1 + 2 + 3 * 4)
    assert (meter._per_key[1, "same key"].steps, meter._per_key[1, "same key"].copies) == (4, 2)


def test_two_loops_whose_steps_share_a_key_are_counted_apart():
    """A solver's loop, then a generator's on the same batch size (generative replay): the second loop's
    steps do other work under the same key, so its first steps are counted, never copied from the first's."""
    steady = {}

    def task():
        meter = flops.FlopMeter(sampled=True, steady=steady)
        with meter.span():
            for rows in (2, 5):
                with flops.loop():
                    for _ in range(4):
                        with flops.step(32, 1):
                            torch.ones(rows, 4) @ torch.ones(4, 4)
        return meter.flops, [c.steps for c in meter._per_key.values()]

    assert task() == (4 * 2 * 16 * (2 + 5), [2, 2])
    assert task() == (4 * 2 * 16 * (2 + 5), [1, 1])  # a later task: each loop's first step matches its own
    assert steady == {(1, 32): 2 * 2 * 16, (2, 32): 2 * 5 * 16}


def test_a_later_task_counts_one_step_when_it_matches_the_earlier_steady_count():
    steady = {}

    def task(rows: int, steps: int = 4):
        meter = flops.FlopMeter(sampled=True, steady=steady)
        with meter.span(), flops.loop():
            for _ in range(steps):
                with flops.step("k", 1):
                    torch.ones(rows, 4) @ torch.ones(4, 4)
        return meter.flops, meter._per_key[1, "k"].steps

    assert task(2) == (4 * 2 * 2 * 16, 2)  # the first task: two steps counted, then steady
    assert task(2) == (4 * 2 * 2 * 16, 1)  # the same work: its first step matches, the rest are copies
    assert task(3) == (4 * 2 * 3 * 16, 2)  # other work: counted afresh
    assert steady == {(1, "k"): 2 * 3 * 16}


SMALL_GENERATOR = {"likelihood": "gaussian", "generator_hidden": [16], "latent_dim": 4}  # blobs are not in [0, 1]


@pytest.mark.parametrize("strategy", [Naive, lambda: Replay({"buffer_size": 30}), lambda: EWC({"lambda": 10.0}),
                                      lambda: MAML({"meta_steps": 4, "meta_batch": 2, "shots": 2, "queries": 3}),
                                      lambda: FTML({"meta_steps": 4, "meta_batch": 2, "shots": 2, "queries": 3}),
                                      lambda: MER({"buffer_size": 30}), lambda: LaMAML({"buffer_size": 30}),
                                      lambda: ICaRL({"memory_size": 20, "chunk": 16}), lambda: DER({"buffer_size": 30}),
                                      lambda: GenerativeReplay(SMALL_GENERATOR),
                                      lambda: GenerativeReplay({**SMALL_GENERATOR, "generator": "gan"})])
def test_basic_counts_the_same_flops_as_full(strategy):
    """One counted step per shape, times the steps, equals counting every step: replay's replayed
    batch, EWC's penalty and Fisher (computed outside the loop), MAML's and FTML's episodes (FTML's
    drawn from every task seen), iCaRL's chunked forward passes and herding rounds (marked
    `repeated`), and generative replay's two loops whose steps share a key (the batch size) but not
    their work included."""
    stream = blob_stream(n_tasks=2, n_per_class=25)  # 50 examples, batch 16: steps of 16 and 2
    per_level = {}
    for level in ("basic", "full"):
        learner = strategy()
        ctx = context(stream, epochs=2)
        learner.setup(ctx)
        record = play(learner, ctx, "s", cost=level)
        per_level[level] = record
    basic, full = per_level["basic"], per_level["full"]
    for key in ("train_flops", "gradient_steps", "samples_seen"):
        assert [c[key] for c in basic.task_cost] == [c[key] for c in full.task_cost]
    assert [c["eval_flops"] for c in basic.eval_cost.values()] == [c["eval_flops"] for c in full.eval_cost.values()]
    assert np.array_equal(basic.scores, full.scores)  # counting never changes what is learned
    if isinstance(learner, MAML):  # 4 meta-steps of 2 episodes of 2 classes x (2 + 3) examples (FTML too)
        assert all(c["gradient_steps"] == 4 and c["samples_seen"] == 4 * 2 * 2 * 5 for c in basic.task_cost)
    elif isinstance(learner, MER):  # 2 SGD steps per minibatch: more updates than marked steps, so no sample count
        assert all(c["gradient_steps"] == 2 * 4 * 2 and math.isnan(c["samples_seen"]) for c in basic.task_cost)
    elif isinstance(learner, GenerativeReplay):  # the solver's loop, then the generator's on the same batches
        steps = [c["gradient_steps"] for c in basic.task_cost]
        if learner.params.generator == "vae":
            assert steps == [2 * 2 * 4] * 2 and [c["samples_seen"] for c in basic.task_cost] == [2 * 2 * 50] * 2
        else:  # and 5 critic updates per generator step: more updates than marked steps, so no sample count
            assert steps == [2 * 4 + 2 * 4 * (1 + 5)] * 2
            assert all(math.isnan(c["samples_seen"]) for c in basic.task_cost)
    elif isinstance(learner, ICaRL):  # task 2 trains on its 50 examples and the 20 exemplars
        assert [(c["gradient_steps"], c["samples_seen"]) for c in basic.task_cost] == [(2 * 4, 2 * 50), (2 * 5, 2 * 70)]
    else:
        assert all(c["gradient_steps"] == 2 * 4 and c["samples_seen"] == 2 * 50 for c in basic.task_cost)


def test_task_costs_of_naive_and_replay():
    stream = blob_stream(n_tasks=2, n_per_class=25)
    ctx = context(stream)
    naive = Naive()
    naive.setup(ctx)
    record = play(naive, ctx, "naive")
    pass_cost = pass_flops(ctx, stream.tasks[0])
    # plain SGD for 3 epochs = 3 forward+backward passes over the task, counted two ways
    assert [c["train_flops"] for c in record.task_cost] == [3 * pass_cost] * 2
    assert [c["stored_examples"] for c in record.task_cost] == [0, 0]
    assert record.task_cost[0]["model_parameters"] == sum(p.numel() for p in naive.model.parameters())
    assert record.eval_cost[0]["eval_flops"] > 0 and set(record.eval_cost) == {0, 1, 2}
    replay = Replay({"buffer_size": 30})
    replay.setup(context(stream))
    record = play(replay, replay.ctx, "replay")
    assert [c["stored_examples"] for c in record.task_cost] == [30, 30]
    assert record.task_cost[1]["train_flops"] > 3 * pass_cost  # the replayed half of each batch


@pytest.mark.parametrize("name, params, stored", [
    ("agem", {"buffer_size": 30}, [30, 30]), ("der", {"buffer_size": 30}, [30, 30]),
    ("gem", {"memory_per_task": 20}, [20, 40]),
    ("icarl", {"memory_size": 30}, [30, 28]),  # K // classes seen per class: 15 x 2, then 7 x 4
    ("ftml", {"meta_steps": 1, "meta_batch": 1}, [50, 100]),  # every example of every task seen
    ("generative_replay", {"generator_hidden": [8], "latent_dim": 2, "likelihood": "gaussian"}, "generator")])
def test_memory_strategies_count_what_they_keep(name, params, stored):
    from lifelong.strategies.registry import strategy_class

    stream = blob_stream(n_tasks=2, n_per_class=25)  # 50 training examples per task
    learner = strategy_class(name)(params)
    learner.setup(context(stream, epochs=1))
    record = play(learner, learner.ctx, name)
    if stored == "generator":  # a generative strategy keeps its generator's parameters in place of examples
        stored = [sum(p.numel() for p in learner.generator.parameters())] * 2
    assert [c["stored_examples"] for c in record.task_cost] == stored


def test_cost_off_records_no_cost_but_the_task_peak_memory(blobs):
    learner = Naive()
    ctx = context(blobs)
    learner.setup(ctx)
    record = play(learner, ctx, "naive", cost="off")
    assert record.task_cost == [{}, {}, {}] and record.eval_cost == {}
    assert (record.peak_memory_mb > 0).all()


def test_cost_level_in_the_config(tmp_path):
    assert load_config("configs/quickstart.yaml").cost == "basic"
    assert load_config("configs/quickstart.yaml", ["cost=off"]).cost == "off"  # YAML's bare off is false
    with pytest.raises(ConfigError, match="field 'cost'"):
        load_config("configs/quickstart.yaml", ["cost=fast"])


def test_cpu_peak_memory_is_the_tasks_own():
    memory = TaskPeakMemory(torch.device("cpu"))
    if memory.method.startswith("process peak"):
        pytest.skip("no per-task peak on this system (neither /proc/self/clear_refs nor psutil)")
    memory.start()
    big = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
    big_peak = memory.stop()
    del big
    memory.start()
    small_peak = memory.stop()
    assert big_peak - small_peak > 300  # the second task does not inherit the first one's peak


# ---- energy -------------------------------------------------------------------------------------

def fake_rapl(root, joules, span_j=1000.0):
    for i, value in enumerate(joules):
        domain = root / f"intel-rapl:{i}"
        (domain / f"intel-rapl:{i}:0").mkdir(parents=True)  # a subdomain (core): not summed
        (domain / "energy_uj").write_text(str(int(value * 1e6)))
        (domain / "max_energy_range_uj").write_text(str(int(span_j * 1e6)))


def test_rapl_is_chosen_on_the_cpu_and_sums_packages_across_a_wrap(tmp_path):
    fake_rapl(tmp_path, [990.0, 10.0])
    meter = energy.energy_meter(torch.device("cpu"), rapl_root=tmp_path)
    assert isinstance(meter, energy.RaplEnergy) and meter.label.startswith("measured (RAPL, 2 CPU package(s)")
    meter.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text(str(int(5.0 * 1e6)))  # wrapped: 990 -> 1000 = 0 -> 5
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text(str(int(12.5 * 1e6)))
    joules, co2 = meter.stop()
    assert joules == pytest.approx(15.0 + 2.5) and math.isnan(co2)


def test_nvml_counter_on_a_gpu(monkeypatch):
    """NVML's counter is in millijoules since the driver loaded; the task's energy is the difference."""
    readings = iter([1_000_000, 1_000_000, 1_250_500])  # the check at setup, start, stop

    class FakeNvml:
        nvmlInit = staticmethod(lambda: None)
        nvmlDeviceGetHandleByIndex = staticmethod(lambda index: f"gpu{index}")
        nvmlDeviceGetTotalEnergyConsumption = staticmethod(lambda handle: next(readings))

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml)
    meter = energy.energy_meter(torch.device("cuda", 1))
    assert isinstance(meter, energy.NvmlEnergy) and meter.label == "measured (NVML energy counter, GPU 1)"
    meter.start()
    assert meter.stop()[0] == pytest.approx(250.5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_memory_is_reset_per_task():
    memory = TaskPeakMemory(torch.device("cuda"))
    memory.start()
    big = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    big_peak = memory.stop()
    del big
    memory.start()
    assert big_peak - memory.stop() >= 255


def test_without_rapl_codecarbon_estimates_and_says_so(tmp_path):
    pytest.importorskip("codecarbon")
    meter = energy.energy_meter(torch.device("cpu"), rapl_root=tmp_path)
    assert isinstance(meter, energy.CodeCarbonEnergy)
    assert meter.label.startswith("estimated (codecarbon, ") and not meter.measured
    meter.start()
    joules, co2 = meter.stop()
    assert joules >= 0 and co2 >= 0


def test_basic_makes_no_estimate(tmp_path):
    meter = energy.energy_meter(torch.device("cpu"), estimate=False, rapl_root=tmp_path)
    assert isinstance(meter, energy.NoEnergy) and "under `cost: full` only" in meter.label


def test_no_backend_gives_nan_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import fails: not installed
    meter = energy.energy_meter(torch.device("cpu"), rapl_root=tmp_path)
    assert isinstance(meter, energy.NoEnergy)
    assert "RAPL: no RAPL package domain" in meter.label and "pip install 'lifelong[cost]'" in meter.label
    meter.start()
    assert all(math.isnan(v) for v in meter.stop())


# ---- efficiency metrics, on hand-worked numbers ---------------------------------------------------

def hand_costs() -> Costs:
    return Costs.of([
        {"train_flops": 2e12, "pass_flops": 1e12, "samples_seen": 100, "train_examples": 100,
         "stored_examples": 0, "model_parameters": 10, "energy_j": 500.0},
        {"train_flops": 4e12, "pass_flops": 1e12, "samples_seen": 100, "train_examples": 100,
         "stored_examples": 50, "model_parameters": 20, "energy_j": 1500.0},
    ], 2)


R = np.array([[0.1, 0.2],
              [0.8, 0.7],   # task 2 before its own training: 0.7 >= 0.9 * 0.75
              [0.5, 0.9]])
INDEPENDENT = np.array([0.8, 0.75])


def value(key, **inputs):
    return METRICS[key].evaluate({"R": R, "independent": INDEPENDENT, "cost": hand_costs(), "within_task": {},
                                  **inputs}).value


def test_efficiency_metrics_on_hand_worked_numbers():
    assert value("acc_per_tflop") == pytest.approx(0.7 / 6)  # ACC = (0.5 + 0.9) / 2 over 6 TFLOP
    assert value("acc_per_kj") == pytest.approx(0.7 / 2)  # over 2 kJ
    # task 1: 0.8 >= 0.72 at its end -> F_1 = 2e12; task 2: already 0.7 >= 0.675 before -> 0
    assert value("flops_to_reach") == pytest.approx(1e12)
    assert value("samples_to_reach") == pytest.approx(50)
    assert value("reach_rate") == 1.0
    assert value("model_size_efficiency") == pytest.approx((10 / 10 + 10 / 20) / 2)  # 0.75
    assert value("sample_storage_efficiency") == pytest.approx(1 - (0 / 200 + 50 / 200) / 2)  # 0.875
    ce = (1e12 / (1 + 2e12) + 1e12 / (1 + 4e12)) / 2
    assert value("computational_efficiency") == pytest.approx(ce)  # 0.375


def test_a_task_not_reached_has_no_term_and_lowers_the_reach_rate():
    low = np.array([0.9, 0.95])  # task 1 ends at 0.8 < 0.81; task 2 reaches 0.9 >= 0.855 at its end
    assert value("flops_to_reach", independent=low) == pytest.approx(4e12)
    assert value("reach_rate", independent=low) == 0.5


def test_a_within_task_curve_gives_the_cost_up_to_the_first_point_that_reaches_the_level():
    # task 1 (goal 0.72): probes [step, samples, flops, score]; the second reaches it, after 40 samples
    # and 0.8 TFLOP of its 2; task 2 already reaches its goal before training (0), whatever its curve
    curve = {0: [[1, 20, 4e11, 0.5], [2, 40, 8e11, 0.75], [3, 60, 1.2e12, 0.9]], 1: [[1, 20, 1e11, 0.1]]}
    assert value("flops_to_reach", within_task=curve) == pytest.approx((8e11 + 0) / 2)
    assert value("samples_to_reach", within_task=curve) == pytest.approx((40 + 0) / 2)
    # task 1 ends at 0.8 < 0.81 but a probe reached 0.9 >= 0.81: it counts as reached, at that probe
    low = np.array([0.9, 0.95])
    assert value("flops_to_reach", independent=low, within_task=curve) == pytest.approx((1.2e12 + 4e12) / 2)
    assert value("reach_rate", independent=low, within_task=curve) == 1.0


def test_missing_energy_makes_the_energy_metric_nan_with_a_reason():
    costs = hand_costs()
    costs.energy_j[:] = np.nan
    result = METRICS["acc_per_kj"].evaluate({"R": R, "cost": costs})
    assert math.isnan(result.value) and "E_i" in result.reason
    assert METRICS["acc_per_tflop"].evaluate({"R": R, "cost": costs}).value == pytest.approx(0.7 / 6)


def test_a_lifetime_that_read_zero_joules_has_no_accuracy_per_kj():
    """NVML's counter is refreshed periodically: a lifetime of a few milliseconds on a GPU reads 0 J
    (seen on an H200), which must give NaN, not a crash after training."""
    costs = hand_costs()
    costs.energy_j[:] = 0.0
    assert math.isnan(METRICS["acc_per_kj"].evaluate({"R": R, "cost": costs}).value)
    costs.train_flops[:] = 0.0
    assert math.isnan(METRICS["acc_per_tflop"].evaluate({"R": R, "cost": costs}).value)


def test_a_capped_metric_of_nothing_stays_nan():
    assert math.isnan(efficiency._capped(np.array([np.nan])))


def test_pareto_front_keeps_the_points_nothing_beats():
    points = {"cheap": (1.0, 0.5), "dear": (4.0, 0.9), "dominated": (4.0, 0.6), "tie": (1.0, 0.5),
              "unknown": (float("nan"), 0.99)}
    assert efficiency.pareto_front(points) == {"cheap", "dear", "tie"}


# ---- end to end: the CLI writes the cost, the report and compare read it --------------------------

@pytest.mark.slow
def test_a_run_records_its_cost_and_the_report_shows_it(tmp_path):
    import pandas as pd

    from tests.integration.test_cli import cache, lifelong

    out = tmp_path / "run"
    result = lifelong("run", "configs/quickstart.yaml", cache(tmp_path), "training.epochs=2", "stream.n_tasks=3",
                      "strategies=[{name: naive}, {name: replay, params: {buffer_size: 50}}, {name: independent}]",
                      "evaluation.within_task_every=4", "--out", out)
    assert result.returncode == 0, result.stderr
    timings = pd.read_csv(out / "timings.csv")
    assert len(timings) == 9
    # plain SGD for 2 epochs is 2 forward+backward passes of the model over the task, counted two ways
    naive, replay = (timings[timings["strategy"] == s].reset_index() for s in ("naive", "replay"))
    assert (naive["train_flops"] == 2 * naive["pass_flops"]).all()
    assert (naive["samples_seen"] == 2 * naive["train_examples"]).all()
    assert (naive["gradient_steps"] == 2 * -(-naive["train_examples"] // 32)).all()
    assert (replay["train_flops"].iloc[1:] > 2 * replay["pass_flops"].iloc[1:]).all()  # the replayed examples
    assert (replay["stored_examples"] == 50).all() and (naive["stored_examples"] == 0).all()
    assert (timings["eval_flops"] > 0).all() and timings["flops_method"].str.contains("two steps per shape").all()
    assert timings["energy_method"].iloc[0].startswith(("measured", "unavailable"))  # no estimate at `basic`
    metrics = json.loads((out / "metrics.json").read_text())["per_seed"]
    tflops = naive["train_flops"].sum() / 1e12
    assert metrics["naive"]["0"]["train_tflops"] == pytest.approx(tflops)
    assert metrics["naive"]["0"]["acc_per_tflop"] == pytest.approx(metrics["naive"]["0"]["acc"] / tflops)
    assert metrics["replay"]["0"]["sample_storage_efficiency"] == pytest.approx(
        1 - 50 / naive["train_examples"].sum())
    assert metrics["independent"]["0"]["computational_efficiency"] == pytest.approx(
        np.mean(naive["pass_flops"] / (1 + naive["train_flops"])))
    report = (out / "report.md").read_text()
    assert "## Cost" in report and "Pareto frontier" in report and "| acc_per_tflop |" in report
    compared = lifelong("compare", out, "--out", tmp_path / "cmp")
    assert compared.returncode == 0, compared.stderr
    assert "train_tflops" in (tmp_path / "cmp/compare.md").read_text()
    # the within-task curves: every 4th step probed; the report, reading within_task.csv back, recomputes
    # the same flops_to_reach as the run (which had the curves in memory)
    curves = pd.read_csv(out / "within_task.csv")
    first = curves[(curves["strategy"] == "naive") & (curves["task"] == 0)]
    steps = int(naive["gradient_steps"][0])  # every 4th step, and the last
    assert first["step"].tolist() == sorted({*range(4, steps + 1, 4), steps})
    from lifelong.report.rundata import load_run
    recomputed = load_run(out).metrics["per_seed"]["naive"][0]
    for key in ("flops_to_reach", "samples_to_reach", "reach_rate"):
        assert recomputed[key] == pytest.approx(metrics["naive"]["0"][key], nan_ok=True)
