"""Task-conditioned hypernetwork (von Oswald et al. 2020, "Continual learning with hypernetworks").

A hypernetwork h maps a learned embedding e_t of task t to *all* weights of the target network
(the config's `model:`), which then classifies task t's inputs through `torch.func.functional_call`.
The target has no weights of its own: only h and the task embeddings are learned. h is *chunked*
(the paper's chunked hypernetwork): it takes [e_t, c_k] for learned chunk embeddings c_1..c_K and
writes the k-th slice of `chunk_size` weights, so its size stays independent of the target's.
Each generated weight tensor is multiplied by the standard deviation of that tensor's default
initialisation (1/sqrt(3 fan_in)), fixed, so an untrained h writes a target of sensible scale.

Forgetting is prevented in weight space, not in the data: while learning task T, the output
regulariser (the paper's eq. 2, without its optional look-ahead)

    beta / (T-1) * sum_{t<T} || h(e_t; theta) - h*_t ||^2

keeps the weights generated for every earlier task t at h*_t, the weights h generated for it when
the previous task ended. Earlier tasks' embeddings are frozen; a new Adam optimiser (`params.lr`,
the paper's optimiser: plain SGD would need a step size per generated layer) is made per task over
h, the chunk embeddings and e_T, as in the paper's code; `training.epochs` and `batch_size` give
the budget. Task identity: on a task-incremental stream the learner reads `task.label` to pick the
embedding (evaluation asks one predictor per task). With `task_inference: true` it also serves
class- and domain-incremental streams: it trains one embedding per task in stream order (the task
boundaries are known while training) and each network on its task's classes; at test time every
input goes to the learned task whose network is most confident (lowest predictive entropy over its
classes), the paper's HNET+ENT. Without either, a stream without task labels is refused.

Not to be confused with `hypernet`, a few-shot meta-learner that generates a classifier head from
a support set.
"""

from __future__ import annotations

import copy
import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.func import functional_call

from lifelong.errors import ConfigError
from lifelong.seeding import derive_seed, generator
from lifelong.strategies.base import Predictor, Strategy
from lifelong.streams.task import Task
from lifelong.training import NonFiniteLossError, fit, task_loss


class HNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(default=1e-3, gt=0, le=10, description="Adam step size of the hypernetwork and embeddings")
    beta: float = Field(default=1.0, ge=0, description="strength of the output regulariser (beta_output)")
    embedding_dim: int = Field(default=32, ge=1, description="size of a task embedding e_t")
    chunk_embedding_dim: int = Field(default=32, ge=1, description="size of a chunk embedding c_k")
    chunk_size: int = Field(default=4096, ge=1, description="target weights written per hypernetwork output")
    hidden: list[int] = Field(default=[100, 100], description="hidden widths of the hypernetwork")
    task_inference: bool = Field(default=False, description="serve streams without task identity: at test time "
                                 "each input goes to the task whose network is most confident (HNET+ENT)")


class ChunkedHypernetwork(nn.Module):
    """h(e) for task embeddings e (..., D): the target's flat weights (..., n_weights).

    One MLP writes every chunk k from [e, c_k]; the chunks are concatenated, cut to the target's
    size and multiplied by the fixed per-weight `scale`.
    """

    def __init__(self, embedding_dim: int, chunk_embedding_dim: int, hidden: list[int], chunk_size: int,
                 scale: torch.Tensor):
        super().__init__()
        widths = [embedding_dim + chunk_embedding_dim, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(widths, widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(widths[-1], chunk_size))
        self.chunks = nn.Parameter(torch.randn(math.ceil(len(scale) / chunk_size), chunk_embedding_dim))
        self.register_buffer("scale", scale)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        lead = embeddings.shape[:-1]
        e = embeddings.unsqueeze(-2).expand(*lead, len(self.chunks), embeddings.shape[-1])
        inputs = torch.cat([e, self.chunks.expand(*lead, *self.chunks.shape)], dim=-1)
        return self.mlp(inputs).flatten(-2)[..., :len(self.scale)] * self.scale


class HNet(Strategy):
    Params = HNetParams

    def setup(self, ctx) -> None:
        if ctx.stream.kind != "classification" or ctx.stream.scenario == "few-shot":
            raise ConfigError(f"strategy hnet classifies task by task; stream {ctx.stream.name!r} is "
                              f"{ctx.stream.kind}, {ctx.stream.scenario} (field `stream`): use a task- or "
                              "class-incremental classification stream")
        if ctx.stream.scenario != "task-il" and not self.params.task_inference:
            raise ConfigError(
                f"strategy hnet needs the task identity, but stream {ctx.stream.name!r} is {ctx.stream.scenario} "
                "(field `stream.scenario`): it picks each task's embedding by its label. Use a task-incremental "
                "stream (e.g. `stream.scenario: task-il` with builder split), set `params.task_inference: true` "
                "(the task is inferred from the networks' confidence), or a strategy that needs no task identity "
                "(naive, replay, ewc)")
        self.ctx = ctx
        self.model = ctx.new_model()  # the target: its shapes only; its weights are generated
        self.shapes = {name: p.shape for name, p in self.model.named_parameters()}
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(ctx.seed, "init", 0, 2))
            self.hnet = ChunkedHypernetwork(p.embedding_dim, p.chunk_embedding_dim, p.hidden, p.chunk_size,
                                            initial_scale(self.model)).to(ctx.device)
        self.embeddings: dict[int, torch.Tensor] = {}  # task label -> e_t
        self.targets: dict[int, torch.Tensor] = {}     # task label -> h*_t, the weights to keep
        self.classes: dict[int, tuple[int, ...]] = {}  # task label -> its classes, once learned

    def embedding(self, label: int) -> torch.Tensor:
        """e_t: drawn from its own seed the first time the task is met (also before training)."""
        if label not in self.embeddings:
            g = generator(self.ctx.seed, "init", 0, 3, label)
            self.embeddings[label] = torch.randn(self.params.embedding_dim, generator=g).to(self.ctx.device)
        return self.embeddings[label]

    def weights(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The target's named weights, as views of one generated vector."""
        pieces = flat.split([math.prod(s) for s in self.shapes.values()])
        return {name: piece.view(shape) for (name, shape), piece in zip(self.shapes.items(), pieces)}

    def output_regulariser(self) -> torch.Tensor:
        """beta / (number of earlier tasks) * sum over them of ||h(e_t) - h*_t||^2 (0 with none)."""
        if not self.targets:
            return torch.zeros((), device=self.ctx.device)
        labels = list(self.targets)
        generated = self.hnet(torch.stack([self.embeddings[t] for t in labels]))
        drift = generated - torch.stack([self.targets[t] for t in labels])
        return self.params.beta / len(labels) * drift.square().sum()

    def key(self, task: Task) -> int:
        """Which embedding a task trains and is scored with: its label (task-incremental); with task
        inference the stream's order, known while training, never used at test time."""
        if task.label is not None:
            return task.label
        if self.params.task_inference:
            return task.id
        raise ConfigError(f"strategy hnet: task {task.name!r} carries no task label; set `params.task_inference: "
                          "true` or use a task-incremental stream (`stream.scenario: task-il`)")

    def learn(self, task: Task) -> dict:
        label = self.key(task)
        e = nn.Parameter(self.embedding(label).clone())
        self.targets.pop(label, None)  # a recurring task relearns its own weights freely
        self.classes[label] = task.classes
        optimizer = torch.optim.Adam([*self.hnet.parameters(), e], lr=self.params.lr)
        mask = self._own_classes(label)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            out = functional_call(self.model, self.weights(self.hnet(e)), (task.x_train[idx],))
            return task_loss(out, task.y_train[idx], task.kind, mask) + self.output_regulariser()

        try:
            loss = fit(self.hnet, optimizer, task, self.ctx.training, self.ctx.shuffle_generator(task), mask,
                       batch_loss)
        except NonFiniteLossError:
            p = self.params
            raise NonFiniteLossError(f"hnet: the training loss on task {task.name!r} became non-finite; lower "
                                     f"params.lr (now {p.lr}) or params.beta (now {p.beta})") from None
        self.embeddings[label] = e.detach()
        with torch.no_grad():
            self.targets = {t: self.hnet(self.embeddings[t]) for t in [*self.targets, label]}
        return {"train_loss": loss}

    def _own_classes(self, label: int) -> torch.Tensor:
        """The additive logit mask of a task's classes: each generated network answers for its task only."""
        mask = torch.full((self.ctx.stream.n_outputs,), float("-inf"), device=self.ctx.device)
        mask[list(self.classes[label])] = 0.0
        return mask

    @torch.no_grad()
    def target(self, label: int) -> nn.Module:
        """A copy of the target network holding the weights generated for task `label`."""
        target = copy.deepcopy(self.model)
        for name, value in self.weights(self.hnet(self.embedding(label))).items():
            target.get_parameter(name).copy_(value)
        return target.eval()

    def predictor(self, task: Task, support=None) -> Predictor:
        if task.label is not None or not self.classes:  # given the task, or none learned yet
            return self.target(self.key(task))
        labels = sorted(self.classes)
        return MostConfident([self.target(t) for t in labels], torch.stack([self._own_classes(t) for t in labels]))

    def predictor_key(self, task: Task) -> int | None:
        """One network per task when the task is given; under task inference one predictor for all."""
        return self.key(task) if task.label is not None else None

    def state_dict(self) -> dict:
        return {"hnet": self.hnet.state_dict(), "embeddings": {str(k): v for k, v in self.embeddings.items()},
                "targets": {str(k): v for k, v in self.targets.items()},
                "classes": {str(k): list(v) for k, v in self.classes.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.hnet.load_state_dict(state["hnet"])
        self.embeddings = {int(k): v for k, v in state["embeddings"].items()}
        self.targets = {int(k): v for k, v in state["targets"].items()}
        self.classes = {int(k): tuple(v) for k, v in state["classes"].items()}


class MostConfident(nn.Module):
    """Task inference by predictive entropy (the paper's HNET+ENT): every learned task's network scores
    the input over its own classes; the input takes the logits of the one whose softmax has the lowest
    entropy (other classes -inf)."""

    def __init__(self, networks: list[nn.Module], masks: torch.Tensor):
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.register_buffer("masks", masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([net(x) for net in self.networks]) + self.masks[:, None]  # (tasks, N, outputs)
        p = logits.log_softmax(-1)
        entropy = -(p.exp() * p.nan_to_num(neginf=0.0)).sum(-1)  # (tasks, N)
        chosen = entropy.argmin(0)
        return logits.gather(0, chosen[None, :, None].expand(1, *logits.shape[1:]))[0]


def initial_scale(model: nn.Module) -> torch.Tensor:
    """Per weight, the standard deviation of torch's default initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    of its layer, 1/sqrt(3 fan_in); a bias takes the fan-in of the weight before it."""
    pieces, fan_in = [], 1
    for p in model.parameters():
        if p.dim() > 1:
            fan_in = math.prod(p.shape[1:])
        pieces.append(torch.full((p.numel(),), 1.0 / math.sqrt(3.0 * fan_in)))
    return torch.cat(pieces)
