"""What the metric- and generation-based meta-learners share: an embedding network, N-way K-shot
episodes drawn from the current task, a bounded exemplar memory, and one episodic strategy class.

`EpisodicStrategy` is the whole life of such a learner; a subclass only says how a labelled
support set turns into logits for queries (`support_logits`):

- meta-training (`learn`): `episodes` episodes of `ways` classes x (`shots` + `queries`)
  examples from the task's training data, labels relabelled 0..ways-1, one Adam step each on the
  cross-entropy of the query logits (Vinyals et al. 2016: train as you test);
- few-shot evaluation: the support set is the task's support set; nothing is optimised, so the
  adaptation curve is flat over the steps;
- standard evaluation: the support set is the exemplar memory of every class seen so far, so
  all seen classes compete (class-incremental without task labels). Classes without support get
  logit -inf; before anything is stored every logit is 0 (a uniform guess).

The exemplar memory is embedded with the current network at every evaluation, so a network that
keeps training never meets stale embeddings. The `training:` section of a config does not apply
to these learners: their budget is `episodes`, their optimiser Adam with `lr`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lifelong.adapt import check_finite
from lifelong.cost import flops
from lifelong.evaluation.fewshot import score_and_loss
from lifelong.models import seeded_model
from lifelong.seeding import derive_seed, generator
from lifelong.strategies.base import Predictor, Strategy, StrategyContext
from lifelong.streams.episodic import episode_sampler
from lifelong.streams.task import Stream, Task

EMBED_BATCH = 4096


class EpisodicParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_dim: int | None = Field(
        default=None, ge=1,
        description="None: the backbone without its output layer (last hidden layer as embedding); "
                    "a number: the backbone with an output layer of this width as embedding")
    episodes: int = Field(default=100, ge=0, le=1_000_000, description="meta-training episodes per task (0: none)")
    ways: int | None = Field(default=None, ge=2, description="classes per episode; None: all classes of the task")
    shots: int = Field(default=5, ge=1, description="support examples per class in an episode")
    queries: int = Field(default=15, ge=1, description="query examples per class in an episode")
    lr: float = Field(default=1e-3, gt=0, le=10, description="Adam step size for meta-training")
    exemplars: int = Field(default=200, ge=1, le=10_000_000,
                           description="exemplars kept over the lifetime, split evenly over the classes seen")


# --------------------------------------------------------------------------- embedding network

def embedding_network(ctx: StrategyContext, width: int | None) -> nn.Module:
    """The configured backbone as an embedding: without its output layer, or with one `width` wide.

    Without `width` the network is the very initialisation `ctx.new_model()` gives the other
    strategies, minus the last Linear. An MLP with `hidden: []` then embeds raw inputs (flattened).
    """
    if width is None:
        return _without_output_layer(ctx.new_model())
    return seeded_model(ctx.model_spec, ctx.stream.input_shape, width, derive_seed(ctx.seed, "init", 0), ctx.device)


def _without_output_layer(model: nn.Module) -> nn.Module:
    children = list(model.children())
    if not isinstance(model, nn.Sequential) or not children:
        raise TypeError(f"cannot find the output layer of {type(model).__name__}; set params.embedding_dim")
    if isinstance(children[-1], nn.Sequential):
        return nn.Sequential(*children[:-1], _without_output_layer(children[-1]))
    if not isinstance(children[-1], nn.Linear):
        raise TypeError(f"the backbone ends in {type(children[-1]).__name__}, not a Linear output layer; "
                        "set params.embedding_dim")
    return nn.Sequential(*children[:-1])


def embed(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Embeddings of `x` in chunks (evaluation sets may be large). Keeps the graph if grad is on."""
    return torch.cat([network(chunk) for chunk in x.split(EMBED_BATCH)]) if len(x) else network(x)


def class_means(z: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean embedding per class id in [0, n_classes): (means (C, D), counts (C,)); 0 where absent."""
    sums = z.new_zeros(n_classes, z.shape[1]).index_add(0, y, z)
    counts = torch.bincount(y, minlength=n_classes).to(z.dtype)
    return sums / counts.clamp_min(1).unsqueeze(1), counts


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 for all pairs: (len(a), len(b))."""
    return ((a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)).clamp_min(0)


# --------------------------------------------------------------------------- episodes

def check_episodes_fit(stream: Stream, ways: int | None, shots: int, queries: int, strategy: str) -> None:
    """Fail fast, naming the task and the parameter, when some task cannot give such episodes."""
    for task in stream.tasks:
        if len(task.classes) < 2:
            raise ValueError(f"{strategy}: task {task.name!r} has {len(task.classes)} class; episodic meta-training "
                             "needs at least 2 classes per task (set episodes: 0, or meta_train: false)")
        episode_sampler(task, shots, queries, strategy, ways=ways)


# --------------------------------------------------------------------------- exemplar memory

class ExemplarMemory:
    """A bounded, class-balanced sample of every training example seen.

    Each example gets a random key when it arrives; each class keeps the examples with the
    smallest keys (a bottom-k sample, i.e. a uniform random subset of all examples of that class
    seen so far, also when a class comes back in a later task). The `capacity` is split evenly
    over the classes seen (the remainder goes to the lowest class ids), so adding classes shrinks
    every class's share and the total never exceeds `capacity`.
    """

    def __init__(self, capacity: int, input_shape: tuple[int, ...], device: torch.device):
        self.capacity = capacity
        self.x = torch.zeros((0, *input_shape), device=device)
        self.y = torch.zeros(0, dtype=torch.long, device=device)
        self.keys = torch.zeros(0, device=device)

    def __len__(self) -> int:
        return len(self.y)

    def add(self, x: torch.Tensor, y: torch.Tensor, draw: torch.Generator) -> None:
        n_old = len(self.y)
        keys = torch.cat([self.keys, torch.rand(len(y), generator=draw, device=draw.device).to(self.keys.device)])
        keep = self._selection(torch.cat([self.y, y]), keys)
        old, new = keep[keep < n_old], keep[keep >= n_old] - n_old
        self.x = torch.cat([self.x[old], x[new]])
        self.y = torch.cat([self.y[old], y[new]])
        self.keys = torch.cat([self.keys[old], keys[n_old:][new]])

    def _selection(self, labels: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        classes = torch.unique(labels).tolist()
        share, extra = divmod(self.capacity, len(classes))
        keep = []
        for rank, cls in enumerate(classes):
            members = (labels == cls).nonzero().flatten()
            quota = share + (rank < extra)
            keep.append(members[keys[members].argsort()[:quota]])
        keep = torch.cat(keep)
        return keep.sort().values  # old entries first, in their stored order

    def state_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "keys": self.keys}

    def load_state_dict(self, state: dict) -> None:
        self.x, self.y, self.keys = state["x"], state["y"], state["keys"]


# --------------------------------------------------------------------------- the strategy

class EpisodicStrategy(Strategy, ABC):
    """Embedding network + episodic meta-training + classification from a support set.

    Subclasses implement `support_logits`; they may add modules in `extra_modules`.
    """

    Params = EpisodicParams

    def setup(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        if ctx.stream.kind != "classification":
            raise ValueError(f"{type(self).__name__} classifies; stream {ctx.stream.name!r} is {ctx.stream.kind}")
        embedding = embedding_network(ctx, self.params.embedding_dim)
        with torch.no_grad():
            self.embedding_dim = embedding(torch.zeros(1, *ctx.stream.input_shape, device=ctx.device)).shape[1]
        self.net = nn.ModuleDict({"embed": embedding, **self.extra_modules(self.embedding_dim)})
        parameters = list(self.net.parameters())
        if self.meta_trains and not parameters:
            raise ValueError(f"{type(self).__name__}: the embedding network has no parameters to meta-train "
                             "(an MLP with hidden: []?); set params.embedding_dim or turn meta-training off")
        if self.meta_trains:
            check_episodes_fit(ctx.stream, self.params.ways, self.params.shots, self.params.queries,
                               type(self).__name__)
        self.optimizer = torch.optim.Adam(parameters, lr=self.params.lr) if parameters else None
        self.exemplars = ExemplarMemory(self.params.exemplars, ctx.stream.input_shape, ctx.device)

    def extra_modules(self, embedding_dim: int) -> dict[str, nn.Module]:
        return {}

    @property
    def meta_trains(self) -> bool:
        return self.params.episodes > 0

    @property
    def keeps_exemplars(self) -> bool:
        return True

    @abstractmethod
    def support_logits(self, z_support: torch.Tensor, y_support: torch.Tensor, z_query: torch.Tensor,
                       n_classes: int) -> torch.Tensor:
        """Logits (queries, n_classes) given support embeddings with labels in [0, n_classes)."""

    # -- lifecycle

    def learn(self, task: Task) -> dict:
        stats = {"episode_loss": self.meta_train(task)} if self.meta_trains else {}
        if self.keeps_exemplars:
            self.exemplars.add(task.x_train, task.y_train, generator(self.ctx.seed, "buffer", task.id,
                                                                     device=self.ctx.device))
            stats["exemplars"] = len(self.exemplars)
        return stats

    def meta_train(self, task: Task) -> float:
        """`episodes` episodes on the task's training data; the mean query loss (one host sync)."""
        ways = self.params.ways or len(task.classes)
        sample = episode_sampler(task, self.params.shots, self.params.queries, type(self).__name__, ways=ways,
                                 relabel=True)
        draw = generator(self.ctx.seed, "episode", task.id, device=self.ctx.device)
        self.net.train()
        total = torch.zeros((), device=self.ctx.device)
        with flops.loop():
            for _ in range(self.params.episodes):
                episode = sample(1, draw)
                x_support, y_support, x_query, y_query = (part[0] for part in episode)
                with flops.step(flops.episode_shapes(episode), flops.episode_examples(episode)):
                    z = self.net["embed"](torch.cat([x_support, x_query]))
                    logits = self.support_logits(z[:len(y_support)], y_support, z[len(y_support):], ways)
                    loss = F.cross_entropy(logits, y_query)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                total += loss.detach()
        mean = total / self.params.episodes
        check_finite(mean, f"episodic loss on task {task.name!r}", fix=f"lower params.lr (now {self.params.lr})")
        return float(mean)

    # -- prediction

    @torch.no_grad()
    def predictor(self, task: Task, support: tuple[torch.Tensor, torch.Tensor] | None = None) -> Predictor:
        """Logits over all `n_outputs` classes from `support`, or from the exemplars of every class seen."""
        self.net.eval()
        x_support, y_support = support if support is not None else (self.exemplars.x, self.exemplars.y)
        return self._classifier(x_support, y_support)

    def _classifier(self, x_support: torch.Tensor, y_support: torch.Tensor) -> Predictor:
        n_outputs = self.ctx.stream.n_outputs
        if len(y_support) == 0:
            return lambda x: torch.zeros(len(x), n_outputs, device=x.device)
        z_support = embed(self.net["embed"], x_support)

        @torch.no_grad()
        def logits(x: torch.Tensor) -> torch.Tensor:
            return self.support_logits(z_support, y_support, embed(self.net["embed"], x), n_outputs)
        return logits

    @torch.no_grad()
    def adaptation_curve(self, task: Task, support: tuple[torch.Tensor, torch.Tensor], steps: int) -> torch.Tensor:
        """No optimisation at test time: the classifier comes from the support set alone, so the curve is flat."""
        outputs = self.predictor(task, support)(task.x_test)
        return score_and_loss(outputs, task.y_test, task.kind, self.ctx.mask(task)).expand(steps + 1, 2).clone()

    # -- state

    def stored_examples(self) -> int:
        return len(self.exemplars)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict() if self.optimizer else {},
                "exemplars": self.exemplars.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        if self.optimizer:
            self.optimizer.load_state_dict(state["optimizer"])
        self.exemplars.load_state_dict(state["exemplars"])
