"""iCaRL: incremental Classifier and Representation Learning (Rebuffi, Kolesnikov, Sperl & Lampert
2017, CVPR).

Three parts, as in the paper's Algorithms 1-5:

* representation learning: a new task trains on its data together with the exemplars, with a
  sigmoid binary cross-entropy over the classes seen so far, summed over the classes; the targets
  are one-hot for the new classes and, for the old ones, the network's own sigmoid outputs
  recorded before training (distillation);
* exemplar management: a memory of `memory_size` exemplars over all classes, m = memory_size //
  classes seen per class. Old classes keep the first m of their list; a new class's list is built
  by herding: each next exemplar is the example that brings the mean of the chosen ones' features
  closest to the class's mean feature (features: the input of the last linear layer, L2-normalised);
* classification: nearest mean of exemplars, the class whose exemplars' mean feature is closest.

Class-incremental classification streams under standard evaluation only: the method is defined
for one head learning new classes without task labels, and anything else is refused before training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lifelong.cost import flops
from lifelong.strategies.base import Predictor, Strategy
from lifelong.strategies.buffers import check_fills
from lifelong.strategies.episodes import squared_distances
from lifelong.strategies.stream_checks import UnsuitableStreamError, require_classification, require_scenario
from lifelong.streams.task import Task
from lifelong.training import fit

FIX = ("Use a split stream with scenario: class-il (e.g. stream: split_digits), or, for other streams, a strategy "
       "without that assumption (replay, der, agem)")


class ICaRLParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory_size: int = Field(default=200, ge=1, description="K: exemplars kept over all classes")
    chunk: int = Field(default=1024, ge=1, description="examples per forward pass when computing features or targets")


class ICaRL(Strategy):
    Params = ICaRLParams

    def setup(self, ctx) -> None:
        require_classification(ctx.stream, "icarl", "learns classes with a sigmoid per class",
                               "naive, ewc, si, replay, agem, gem, der")
        require_scenario(ctx.stream, "icarl", "class-il", "learns new classes in one head without task labels", FIX)
        if ctx.evaluation.mode != "standard":
            raise UnsuitableStreamError("icarl classifies by the nearest mean of exemplars, which the few-shot "
                                        "protocol cannot fine-tune; set evaluation.mode: standard")
        check_fills(ctx.stream, self.params.memory_size, "icarl", "memory_size")
        super().setup(ctx)
        device, shape = ctx.device, ctx.stream.input_shape
        self.exemplars = {"x": torch.zeros((0, *shape), device=device),
                          "y": torch.zeros(0, dtype=torch.long, device=device),
                          "rank": torch.zeros(0, dtype=torch.long, device=device)}  # place in its class's list
        self.seen_classes: list[int] = []
        self.means = torch.zeros((0, 0), device=device)  # one row per seen class, in seen_classes order

    def learn(self, task: Task) -> dict:
        union = Task(task.id, task.name, task.kind, torch.cat([task.x_train, self.exemplars["x"]]),
                     torch.cat([task.y_train, self.exemplars["y"]]), task.x_test, task.y_test, task.classes)
        old = list(self.seen_classes)
        self.seen_classes += [c for c in task.classes if c not in old]
        columns = torch.tensor(self.seen_classes, device=self.ctx.device)
        targets = self._targets(union, old)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            logits = self.model(union.x_train[idx])[:, columns]
            return F.binary_cross_entropy_with_logits(logits, targets[idx], reduction="none").sum(1).mean()

        loss = fit(self.model, self.optimizer, union, self.ctx.training, self.ctx.shuffle_generator(task), None,
                   batch_loss)
        self._update_exemplars(task, [c for c in task.classes if c not in old])
        return {"train_loss": loss, "exemplars": len(self.exemplars["y"])}

    @torch.no_grad()
    def _targets(self, union: Task, old: list[int]) -> torch.Tensor:
        """Per example and seen class: the recorded sigmoid output for an old class, else 1 for its label."""
        labels = (union.y_train.unsqueeze(1) == torch.tensor(self.seen_classes, device=self.ctx.device)).float()
        if not old:
            return labels
        self.model.eval()
        x = union.x_train
        with flops.loop():
            recorded = torch.cat([self._chunk_forward(x[i:i + self.params.chunk])[:, old]
                                  for i in range(0, len(x), self.params.chunk)])
        labels[:, :len(old)] = torch.sigmoid(recorded)
        return labels

    @torch.no_grad()
    def _update_exemplars(self, task: Task, new_classes: list[int]) -> None:
        per_class = self.params.memory_size // len(self.seen_classes)
        keep = self.exemplars["rank"] < per_class
        parts = [{k: v[keep] for k, v in self.exemplars.items()}]
        for c in new_classes:
            x = task.x_train[task.y_train == c]
            order = herding(self._features(x), per_class)
            parts.append({"x": x[order], "y": torch.full((len(order),), c, device=self.ctx.device),
                          "rank": torch.arange(len(order), device=self.ctx.device)})
        self.exemplars = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        features = self._features(self.exemplars["x"])
        rows = torch.tensor(self.seen_classes, device=self.ctx.device)
        onehot = (self.exemplars["y"].unsqueeze(0) == rows.unsqueeze(1)).float()
        self.means = F.normalize(onehot @ features / onehot.sum(1, keepdim=True).clamp_min(1), dim=1)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised inputs of the last linear layer (the feature extractor phi), in eval mode."""
        self.model.eval()
        last = [m for m in self.model.modules() if isinstance(m, nn.Linear)][-1]
        seen = []
        hook = last.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
        try:
            with flops.loop():
                for i in range(0, len(x), self.params.chunk):
                    self._chunk_forward(x[i:i + self.params.chunk])
        finally:
            hook.remove()
        return F.normalize(torch.cat(seen), dim=1)

    def _chunk_forward(self, chunk: torch.Tensor) -> torch.Tensor:
        """One chunk's forward pass: chunks of one size do the same work (counted twice, then copied)."""
        with flops.repeated(("forward", tuple(chunk.shape))):
            return self.model(chunk)

    def predictor(self, task: Task, support=None) -> Predictor:
        """Nearest mean of exemplars: -squared distance to each seen class's mean, -inf for the others."""
        if not self.seen_classes:
            return super().predictor(task)
        n_outputs, means = self.ctx.stream.n_outputs, self.means
        columns = torch.tensor(self.seen_classes, device=self.ctx.device)

        @torch.no_grad()
        def nearest_mean(x: torch.Tensor) -> torch.Tensor:
            scores = -squared_distances(self._features(x), means)
            out = torch.full((len(x), n_outputs), float("-inf"), device=x.device, dtype=scores.dtype)
            return out.index_copy_(1, columns, scores)

        return nearest_mean

    def stored_examples(self) -> int:
        return len(self.exemplars["x"])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "exemplars": self.exemplars, "seen_classes": self.seen_classes,
                "means": self.means}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.exemplars, self.means = state["exemplars"], state["means"]
        self.seen_classes = list(state["seen_classes"])


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """Indices of m rows chosen greedily so that the mean of the first k chosen stays closest to the
    mean of all rows, for every k (Algorithm 4); no row is chosen twice."""
    target = features.mean(0)
    total = torch.zeros_like(target)
    taken = torch.zeros(len(features), dtype=torch.bool, device=features.device)
    chosen = []
    with flops.loop():  # every round does the same work: counted twice, not m times (cost accounting)
        for k in range(1, min(m, len(features)) + 1):
            with flops.repeated(("herding", tuple(features.shape))):
                distance = ((target - (total + features) / k) ** 2).sum(1).masked_fill(taken, float("inf"))
                pick = distance.argmin()
                chosen.append(pick)
                taken[pick] = True
                total += features[pick]
    return torch.stack(chosen) if chosen else torch.zeros(0, dtype=torch.long, device=features.device)
