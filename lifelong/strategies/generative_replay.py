"""Deep Generative Replay (Shin et al. 2017, "Continual Learning with Deep Generative Replay").

A scholar is a solver (the config's model) plus a generator of inputs: a small VAE by default
(`generator: vae`, `lifelong.strategies.vae`), or the paper's WGAN-GP (`generator: gan`,
`lifelong.strategies.gan`). On task t > 1, with frozen copies of the previous solver and generator:

- the solver trains on the task's batches mixed with as many generated inputs x' ~ G_{t-1}, each
  labelled by the previous solver (its argmax class), loss r * L(new) + (1 - r) * L(replayed);
- the generator then trains on the same batches mixed with generated inputs, with the same weights
  (the VAE: r * its loss on the new inputs + (1 - r) * on the replayed ones; the GAN: its critic
  takes the real inputs as that weighted mixture), so it learns the inputs of every task seen.

r (`new_weight`) is 0.5 by default; `new_weight: null` gives r = 1/t, every task seen weighted
equally, which slowed the new task's learning more than it saved the old ones on class-incremental
split digits (final ACC 0.12-0.26 against 0.41-0.54 with r = 0.5, 3 seeds, 10 epochs). No example
is stored: the generator's parameters (the GAN's with its critic's) are what the strategy keeps of
the past (reported as `generator_parameters` in the training stats). Served: class- and domain-incremental
classification. Refused: regression (nothing to label replayed inputs with), and task-incremental
or few-shot streams (a generated input has no task, so no output mask).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lifelong.errors import ConfigError
from lifelong import seeding
from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy
from lifelong.strategies.gan import GAN
from lifelong.strategies.vae import VAE, Likelihood
from lifelong.streams.task import Task
from lifelong.training import NonFiniteLossError, TrainingSpec, fit, task_loss


DEFAULT_GENERATOR_LR = {"vae": 1e-3, "gan": 1e-4}  # the GAN's: the WGAN-GP paper's


class GenerativeReplayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generator: Literal["vae", "gan"] = Field(default="vae", description="vae: a variational autoencoder; gan: a "
                                                                        "WGAN-GP, as Shin et al. used")
    latent_dim: int = Field(default=32, ge=1, description="latent size (VAE code, GAN noise)")
    generator_hidden: list[int] = Field(default=[256], description="hidden widths of the VAE's encoder "
                                                                   "and decoder, or the GAN's critic and generator")
    likelihood: Likelihood = Field(default="bernoulli", description="bernoulli: inputs in [0, 1] (images; the GAN "
                                                                    "ends in a sigmoid); gaussian: any real inputs")
    generator_lr: float | None = Field(default=None, gt=0, le=10, description="Adam step size of the generator "
                                                                              "(and critic); default: 1e-3 (vae), "
                                                                              "1e-4 (gan)")
    critic_updates: int = Field(default=5, ge=1, description="gan: critic steps per generator step")
    gradient_penalty: float = Field(default=10.0, ge=0, description="gan: lambda, the critic's gradient penalty")
    generator_epochs: int | None = Field(default=None, ge=1, description="default: training.epochs")
    new_weight: float | None = Field(default=0.5, gt=0, le=1, description="r, the weight of the new task's "
                                                                          "loss; null: 1/(tasks seen)")
    replay_batch_size: int | None = Field(default=None, ge=1, description="default: training.batch_size")

    @model_validator(mode="after")
    def _gan_settings_need_the_gan(self):
        misplaced = sorted({"critic_updates", "gradient_penalty"} & self.model_fields_set)
        if self.generator != "gan" and misplaced:
            raise ValueError(f"{', '.join(misplaced)} only apply to the GAN; set generator: gan, or remove them")
        return self


class GenerativeReplay(Strategy):
    Params = GenerativeReplayParams

    def setup(self, ctx) -> None:
        self._check_stream(ctx)
        super().setup(ctx)
        p = self.params
        self.generator_lr = p.generator_lr or DEFAULT_GENERATOR_LR[p.generator]
        shape = ctx.stream.input_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(ctx.seed, "init", 0, 4))
            generator = VAE(shape, p.generator_hidden, p.latent_dim, p.likelihood) if p.generator == "vae" else \
                GAN(shape, p.generator_hidden, p.latent_dim, p.likelihood, self.generator_lr, p.critic_updates,
                    p.gradient_penalty)
        self.generator = generator.to(ctx.device)
        self.generator_optimizer = self.generator.optimizer(self.generator_lr)
        self.tasks_seen = 0

    def _check_stream(self, ctx) -> None:
        stream, fix = ctx.stream, "use a class- or domain-incremental classification stream"
        if stream.kind != "classification":
            raise ConfigError(f"strategy generative_replay cannot serve stream {stream.name!r}: it is {stream.kind} "
                              "(field `stream`), and replayed inputs are labelled by the previous solver's class; "
                              f"{fix}, or use replay for regression")
        if stream.scenario not in ("class-il", "domain-il"):
            raise ConfigError(f"strategy generative_replay cannot serve stream {stream.name!r}: it is "
                              f"{stream.scenario} (field `stream.scenario`), and a generated input has no task "
                              f"label; {fix}")
        if self.params.likelihood == "bernoulli":
            x = stream.tasks[0].x_train
            if len(x) and (x.min() < 0 or x.max() > 1):
                raise ConfigError(f"strategy generative_replay: params.likelihood is bernoulli, but the inputs of "
                                  f"stream {stream.name!r} range over [{float(x.min()):.3g}, {float(x.max()):.3g}], "
                                  "not [0, 1]; set `params.likelihood: gaussian`")

    def learn(self, task: Task) -> dict:
        previous = None
        if self.tasks_seen:
            previous = copy.deepcopy(self.model).eval(), copy.deepcopy(self.generator).eval()
        self.tasks_seen += 1
        r = self.params.new_weight or 1.0 / self.tasks_seen
        n_replay = self.params.replay_batch_size or self.ctx.training.batch_size
        mask = self.ctx.mask(task)
        draws = {part: seeding.generator(self.ctx.seed, "buffer", task.id, part, device=self.ctx.device)
                 for part in (1, 2, 3)}  # 1: the solver's replays, 2: the generator's, 3: its VAE noise

        def solver_loss(idx: torch.Tensor) -> torch.Tensor:
            loss = task_loss(self.model(task.x_train[idx]), task.y_train[idx], task.kind, mask)
            if previous is None:
                return loss
            old_solver, old_generator = previous
            x = old_generator.sample(n_replay, draws[1])
            with torch.no_grad():
                y = old_solver(x).argmax(1)  # labelled by the previous solver
            return r * loss + (1 - r) * task_loss(self.model(x), y, task.kind)

        def generator_loss(idx: torch.Tensor) -> torch.Tensor:
            if previous is None:
                return self.generator.mixture_loss([(task.x_train[idx], 1.0)], draws[3])
            replayed = previous[1].sample(n_replay, draws[2])
            return self.generator.mixture_loss([(task.x_train[idx], r), (replayed, 1 - r)], draws[3])

        loss = fit(self.model, self.optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                   solver_loss)
        budget = TrainingSpec(**{**self.ctx.training.model_dump(),
                                 "epochs": self.params.generator_epochs or self.ctx.training.epochs})
        try:
            generator_loss_mean = fit(self.generator, self.generator_optimizer, task, budget,
                                      self.ctx.shuffle_generator(task), None, generator_loss)
        except NonFiniteLossError:
            raise NonFiniteLossError(
                f"generative_replay: the generator's loss on task {task.name!r} became non-finite; lower "
                f"params.generator_lr (now {self.generator_lr})") from None
        return {"train_loss": loss, "generator_loss": generator_loss_mean,
                "generator_parameters": sum(p.numel() for p in self.generator.parameters())}

    def stored_examples(self) -> int:
        """No examples: the generator's parameters stand for them (what the cost record counts)."""
        return sum(p.numel() for p in self.generator.parameters())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.state_dict(),
                "generator_optimizer": self.generator_optimizer.state_dict(), "tasks_seen": self.tasks_seen}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.load_state_dict(state["generator"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.tasks_seen = int(state["tasks_seen"])
