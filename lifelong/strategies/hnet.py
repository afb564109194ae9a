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
the budget. The task identity is required: the
learner reads `task.label` to pick the embedding, so only task-incremental streams are served (the
paper's task-inference variant is not implemented). Evaluation asks one predictor per task.

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
        if ctx.stream.scenario != "task-il":
            raise ConfigError(
                f"strategy hnet needs the task identity, but stream {ctx.stream.name!r} is {ctx.stream.scenario} "
                "(field `stream.scenario`): it picks each task's embedding by its label. Use a task-incremental "
                "stream (e.g. `stream.scenario: task-il` with builder split), or a strategy that needs no task "
                "identity (naive, replay, ewc)")
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

    def learn(self, task: Task) -> dict:
        label = _label(task)
        e = nn.Parameter(self.embedding(label).clone())
        self.targets.pop(label, None)  # a recurring task relearns its own weights freely
        optimizer = torch.optim.Adam([*self.hnet.parameters(), e], lr=self.params.lr)
        mask = self.ctx.mask(task)

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

    @torch.no_grad()
    def predictor(self, task: Task, support=None) -> Predictor:
        """A copy of the target holding the weights generated for this task."""
        target = copy.deepcopy(self.model)
        for name, value in self.weights(self.hnet(self.embedding(_label(task)))).items():
            target.get_parameter(name).copy_(value)
        return target.eval()

    def predictor_key(self, task: Task) -> int:
        return _label(task)

    def state_dict(self) -> dict:
        return {"hnet": self.hnet.state_dict(), "embeddings": {str(k): v for k, v in self.embeddings.items()},
                "targets": {str(k): v for k, v in self.targets.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.hnet.load_state_dict(state["hnet"])
        self.embeddings = {int(k): v for k, v in state["embeddings"].items()}
        self.targets = {int(k): v for k, v in state["targets"].items()}


def _label(task: Task) -> int:
    if task.label is None:
        raise ConfigError(f"strategy hnet: task {task.name!r} carries no task label; hnet serves task-incremental "
                          "streams only (`stream.scenario: task-il`)")
    return task.label


def initial_scale(model: nn.Module) -> torch.Tensor:
    """Per weight, the standard deviation of torch's default initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    of its layer, 1/sqrt(3 fan_in); a bias takes the fan-in of the weight before it."""
    pieces, fan_in = [], 1
    for p in model.parameters():
        if p.dim() > 1:
            fan_in = math.prod(p.shape[1:])
        pieces.append(torch.full((p.numel(),), 1.0 / math.sqrt(3.0 * fan_in)))
    return torch.cat(pieces)
