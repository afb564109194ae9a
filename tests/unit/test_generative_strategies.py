"""hnet (task-conditioned hypernetwork) and generative_replay (VAE or GAN replay): values worked by hand, the
defining effect against naive across seeds, exact resume, and the streams each refuses."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from lifelong.errors import ConfigError, UserError
from lifelong.evaluation import metrics
from lifelong.models import ModelSpec
from lifelong.orchestrator import play
from lifelong.strategies.base import StrategyContext
from lifelong.strategies.gan import GAN
from lifelong.strategies.generative_replay import GenerativeReplay
from lifelong.strategies.hnet import HNet, MostConfident, initial_scale
from lifelong.strategies.naive import Naive
from lifelong.strategies.vae import negative_elbo
from lifelong.streams.builders import build_stream
from lifelong.streams.spec import SplitSpec
from lifelong.streams.task import Stream, Task
from lifelong.training import TrainingSpec
from tests.conftest import blob_stream, context
from tests.single_thread import one_thread  # noqa: F401  (autouse fixture)

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason=f"Fashion-MNIST not installed in {FASHION}")


def lifetime(strategy, stream, seed=0, hidden=(64,), **training):
    ctx = StrategyContext(stream, ModelSpec(hidden=list(hidden)), TrainingSpec(**training), torch.device("cpu"), seed)
    strategy.setup(ctx)
    return play(strategy, ctx, type(strategy).__name__.lower())


def through_checkpoint(state: dict) -> dict:
    """The state as a resumed run reads it: saved, then loaded with weights_only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def bwt_per_seed(strategy_class, params, stream, seeds, **training):
    return np.array([metrics.bwt(lifetime(strategy_class(params), stream, seed, **training).scores) for seed in seeds])


# ------------------------------------------------------------------------------------------------ hnet

class Doubling(nn.Module):
    """A stand-in hypernetwork with outputs worked out by hand: h(e) = [e, 2e]."""

    def forward(self, e):
        return torch.cat([e, 2 * e], dim=-1)


def test_hnet_output_regulariser_is_beta_over_earlier_tasks_times_the_summed_squared_drift():
    hnet = HNet({"beta": 0.5, "embedding_dim": 2})
    hnet.setup(context(blob_stream(scenario="task-il")))
    assert float(hnet.output_regulariser()) == 0.0  # no earlier task yet
    hnet.hnet = Doubling()
    hnet.embeddings = {0: torch.tensor([1.0, 2.0]), 1: torch.tensor([0.0, -1.0])}
    # h(e_0) = [1, 2, 2, 4]: drift from [1, 2, 2, 3] is [0, 0, 0, 1] -> 1
    # h(e_1) = [0, -1, 0, -2]: drift from [1, -1, 0, 0] is [-1, 0, 0, -2] -> 5
    hnet.targets = {0: torch.tensor([1.0, 2.0, 2.0, 3.0]), 1: torch.tensor([1.0, -1.0, 0.0, 0.0])}
    assert float(hnet.output_regulariser()) == pytest.approx(0.5 / 2 * (1 + 5))


def test_hnet_generates_every_target_weight_and_stores_each_tasks_weights_at_task_end():
    stream = blob_stream(scenario="task-il")
    hnet = HNet({"chunk_size": 100})
    ctx = context(stream, epochs=1)
    hnet.setup(ctx)
    target = ctx.new_model()
    n_weights = sum(p.numel() for p in target.parameters())
    assert hnet.hnet(hnet.embedding(0)).shape == (n_weights,)
    assert len(hnet.hnet.chunks) == math.ceil(n_weights / 100)
    # fan-in 8 for the first layer's weights and biases, 32 for the output layer's
    assert initial_scale(target)[0] == pytest.approx(1 / math.sqrt(24))
    assert initial_scale(target)[-1] == pytest.approx(1 / math.sqrt(96))
    hnet.learn(stream.tasks[0])
    hnet.learn(stream.tasks[1])
    assert sorted(hnet.targets) == [0, 1]
    assert float(hnet.output_regulariser().detach()) < 1e-12  # the targets are what h writes now
    predictor = hnet.predictor(stream.tasks[0])
    generated = hnet.weights(hnet.hnet(hnet.embeddings[0]))
    for name, p in predictor.named_parameters():
        assert torch.equal(p, generated[name])
    assert hnet.predictor_key(stream.tasks[1]) == 1


@needs_fashion
def test_hnet_backward_transfer_is_about_zero_where_naive_forgets_on_task_incremental_split_fashion_mnist():
    stream = build_stream(SplitSpec(name="split", builder="split", dataset="fashion_mnist", scenario="task-il",
                                    n_tasks=5, classes_per_task=2, train_per_task=300, test_per_task=300))
    budget = {"epochs": 3, "batch_size": 32, "lr": 0.005, "optimizer": "adam"}  # naive as hnet trains
    seeds = [0, 1, 2]
    hnet = bwt_per_seed(HNet, {"lr": 0.005}, stream, seeds, **budget)
    naive = bwt_per_seed(Naive, {}, stream, seeds, **budget)
    assert np.abs(hnet).max() < 0.01, hnet  # measured: |BWT| <= 0.0033; naive -0.05 to -0.2
    gaps = hnet - naive  # paired by seed: same stream, same initial target
    assert gaps.min() > 0.03 and gaps.mean() > gaps.std(ddof=1), (hnet, naive)


class Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_task_inference_routes_each_input_to_the_network_with_the_lowest_entropy_over_its_classes():
    # task A answers on classes 0, 1; task B on 2, 3. A is unsure (logits 0, 0: entropy log 2), B sure.
    inf = float("-inf")
    masks = torch.tensor([[0.0, 0.0, inf, inf], [inf, inf, 0.0, 0.0]])
    router = MostConfident([Fixed([0.0, 0.0, 9.0, 9.0]), Fixed([5.0, 5.0, 4.0, 0.0])], masks)
    assert torch.equal(router(torch.zeros(2, 1)), torch.tensor([[inf, inf, 4.0, 0.0]] * 2))
    router = MostConfident([Fixed([3.0, 0.0, 0.0, 0.0]), Fixed([0.0, 0.0, 0.1, 0.0])], masks)
    assert torch.equal(router(torch.zeros(1, 1)), torch.tensor([[3.0, 0.0, inf, inf]]))


@needs_fashion
def test_hnet_with_task_inference_beats_naive_on_class_incremental_split_fashion_mnist():
    stream = build_stream(SplitSpec(name="split", builder="split", dataset="fashion_mnist", scenario="class-il",
                                    n_tasks=5, classes_per_task=2, train_per_task=300, test_per_task=300))
    budget = {"epochs": 3, "batch_size": 32, "lr": 0.005, "optimizer": "adam"}
    seeds = [0, 1, 2]
    hnet = np.array([metrics.acc(lifetime(HNet({"lr": 0.005, "task_inference": True}), stream, s, **budget).scores)
                     for s in seeds])
    naive = np.array([metrics.acc(lifetime(Naive(), stream, s, **budget).scores) for s in seeds])
    assert hnet.min() > naive.max() + 0.15, (hnet, naive)  # measured: 0.37-0.47 against 0.10-0.12


@pytest.mark.parametrize("scenario, params", [("task-il", {}), ("class-il", {"task_inference": True})])
def test_hnet_resumes_byte_exactly_from_its_state(scenario, params):
    stream = blob_stream(scenario=scenario)
    params = {"chunk_size": 200, "lr": 0.01, **params}
    whole = HNet(params)
    whole.setup(context(stream, epochs=2))
    first = HNet(params)
    first.setup(context(stream, epochs=2))
    for task in stream.tasks[:2]:
        whole.learn(task)
        first.learn(task)
    resumed = HNet(params)
    resumed.setup(context(stream, epochs=2))
    resumed.load_state_dict(through_checkpoint(first.state_dict()))
    whole.learn(stream.tasks[2])
    resumed.learn(stream.tasks[2])
    for a, b in zip(whole.hnet.state_dict().values(), resumed.hnet.state_dict().values()):
        assert torch.equal(a, b)
    x = stream.tasks[0].x_test
    assert torch.equal(whole.predictor(stream.tasks[0])(x), resumed.predictor(stream.tasks[0])(x))


def test_hnet_refuses_a_stream_without_task_identity_before_training():
    from lifelong.config import ExperimentConfig
    from lifelong.preflight import check_stream_fits

    with pytest.raises(ConfigError, match=r"hnet.*class-il.*stream.scenario.*task-il.*params.task_inference: true"):
        HNet().setup(context(blob_stream(scenario="class-il")))
    with pytest.raises(ConfigError, match=r"hnet classifies .* 'lines' is regression"):
        HNet({"task_inference": True}).setup(context(regression_stream()))
    config = ExperimentConfig.model_validate({"name": "x", "stream": {"name": "s", "builder": "split", "n_tasks": 2},
                                              "strategies": [{"name": "lifelong.strategies.hnet:HNet"}]})
    with pytest.raises(UserError, match=r"hnet.*needs the task identity"):
        check_stream_fits(config, build_stream(config.stream))


def test_hnet_rejects_unknown_and_out_of_range_settings():
    with pytest.raises(ValueError, match="chunk_size"):
        HNet({"chunk_size": 0})
    with pytest.raises(ValueError, match="betta"):
        HNet({"betta": 1.0})


# ------------------------------------------------------------------------------------- generative_replay

def test_negative_elbo_equals_hand_worked_bernoulli_and_gaussian_values():
    mu, logvar = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [math.log(2.0)]])
    kl = torch.tensor([0.5, -0.5 * (1 + math.log(2.0) - 2.0)])  # -1/2 (1 + logvar - mu^2 - exp(logvar))
    x = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    # Bernoulli: -[x log s + (1-x) log(1-s)], s = sigmoid(logit): row 1: 2 log 2; row 2: log 2 + log(4/3)
    bernoulli = torch.tensor([2 * math.log(2.0), math.log(2.0) + math.log(4 / 3)])
    assert float(negative_elbo(logits, x, mu, logvar, "bernoulli")) == pytest.approx(float((bernoulli + kl).mean()))
    # Gaussian, unit variance: ||x - mean||^2 / 2 + (d/2) log 2 pi
    gaussian = torch.tensor([0.5 * 1.0, 0.5 * (0.25 + (1 - math.log(3.0)) ** 2)]) + math.log(2 * math.pi)
    assert float(negative_elbo(logits, x, mu, logvar, "gaussian")) == pytest.approx(float((gaussian + kl).mean()))


def test_wgan_gp_critic_loss_equals_the_hand_worked_value_for_a_linear_critic():
    """D(x) = a.x + b has slope a everywhere, so the penalty is (||a|| - 1)^2 wherever x^ falls."""
    gan = GAN((2,), [], 1, "gaussian", 1e-4, critic_updates=1, gradient_penalty=10.0)
    with torch.no_grad():
        gan.critic[-1].weight.copy_(torch.tensor([[3.0, 4.0]]))  # ||a|| = 5
        gan.critic[-1].bias.fill_(1.0)
    new, replayed = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 2.0]])
    fake = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # E D(fake) = (1 + 8 - 2) / 3; real: 0.25 * (4 + 5) / 2 + 0.75 * 15; penalty 10 * (5 - 1)^2
    expected = 7 / 3 - (0.25 * 4.5 + 0.75 * 15.0) + 10 * 16
    loss = gan._critic_loss([(new, 0.25), (replayed, 0.75)], fake, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize("params", [{}, {"generator": "gan", "generator_lr": 1e-3}], ids=["vae", "gan"])
def test_generative_replay_beats_naive_on_class_incremental_split_digits(params):
    stream = build_stream(SplitSpec(name="split_digits", builder="split", dataset="digits", scenario="class-il",
                                    n_tasks=5, classes_per_task=2))
    budget = {"epochs": 10, "batch_size": 32, "lr": 0.05}
    seeds = [0, 1, 2]
    replayed = np.array([metrics.acc(lifetime(GenerativeReplay(params), stream, s, **budget).scores) for s in seeds])
    naive = np.array([metrics.acc(lifetime(Naive(), stream, s, **budget).scores) for s in seeds])
    spread = max(np.ptp(replayed), np.ptp(naive))
    assert replayed.mean() - naive.mean() > spread, (replayed, naive)
    assert replayed.min() > naive.max() + 0.1, (replayed, naive)


@pytest.mark.parametrize("generator", ["vae", "gan"])
def test_generative_replay_resumes_byte_exactly_from_its_state(generator):
    """The GAN's critic and its optimiser's moments come back too (`GAN.get_extra_state`)."""
    stream = blob_stream()
    params = {"generator": generator, "likelihood": "gaussian", "generator_hidden": [16], "latent_dim": 4}
    whole, first, resumed = GenerativeReplay(params), GenerativeReplay(params), GenerativeReplay(params)
    for strategy in (whole, first, resumed):
        strategy.setup(context(stream, epochs=2))
    for task in stream.tasks[:2]:
        whole.learn(task)
        stats = first.learn(task)
    assert stats["generator_parameters"] == sum(p.numel() for p in first.generator.parameters())
    resumed.load_state_dict(through_checkpoint(first.state_dict()))
    whole.learn(stream.tasks[2])
    resumed.learn(stream.tasks[2])
    assert resumed.tasks_seen == 3
    for a, b in ((whole.model, resumed.model), (whole.generator, resumed.generator)):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(p, q), name
    if generator == "gan":  # the critic's Adam moments, which its next steps depend on
        torch.testing.assert_close(whole.generator.critic_optimizer.state_dict()["state"],
                                   resumed.generator.critic_optimizer.state_dict()["state"], rtol=0, atol=0)


def regression_stream() -> Stream:
    x = torch.linspace(0, 1, 20).unsqueeze(1)
    task = Task(0, "line", "regression", x, 2 * x.squeeze(1), x, 2 * x.squeeze(1))
    return Stream("lines", "domain-il", (task,), (1,), 1, 0)


@pytest.mark.parametrize("stream, params, message", [
    (regression_stream(), {}, r"generative_replay cannot serve stream 'lines': it is regression \(field `stream`\)"),
    (blob_stream(scenario="task-il"), {}, r"generative_replay .* task-il \(field `stream.scenario`\).*class- or "
                                          r"domain-incremental"),
    (blob_stream(), {}, r"params.likelihood is bernoulli.*set `params.likelihood: gaussian`"),
])
def test_generative_replay_refuses_streams_it_cannot_serve_with_the_field_and_the_fix(stream, params, message):
    with pytest.raises(ConfigError, match=message):
        GenerativeReplay(params).setup(context(stream))


def test_gan_settings_without_the_gan_are_refused_naming_them_and_the_fix():
    with pytest.raises(ValueError, match=r"critic_updates only apply to the GAN; set generator: gan"):
        GenerativeReplay({"critic_updates": 3})
    assert GenerativeReplay({"generator": "gan", "critic_updates": 3}).params.critic_updates == 3


def test_a_diverging_hypernetwork_or_generator_names_its_own_step_size():
    from lifelong.training import NonFiniteLossError

    hnet = HNet({"lr": 10.0, "beta": 1e30, "chunk_size": 100})
    hnet.setup(context(blob_stream(scenario="task-il"), epochs=1))
    hnet.learn(hnet.ctx.stream.tasks[0])
    with pytest.raises(NonFiniteLossError, match=r"hnet: .* params.lr \(now 10.0\) or params.beta"):
        hnet.learn(hnet.ctx.stream.tasks[1])
    replay = GenerativeReplay({"likelihood": "gaussian", "generator_lr": 10.0, "generator_hidden": [16]})
    replay.setup(context(blob_stream(), epochs=2))
    with pytest.raises(NonFiniteLossError, match=r"generative_replay: .* params.generator_lr \(now 10.0\)"):
        for task in replay.ctx.stream.tasks:
            replay.learn(task)
