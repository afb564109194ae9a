"""Matching Networks (Vinyals et al. 2016, "Matching Networks for One Shot Learning").

A query is labelled by attention over a labelled support set: a = softmax(scale * cos(f(x), f(x_i)))
over the support examples, P(y = c | x) = sum of the attention on support examples of class c.
The logits handed to the evaluator are log P, so classes absent from the support get -inf.
The embedding is trained episodically on each task (train as you test). The support set is the
task's support set under few-shot evaluation, and a bounded class-balanced exemplar memory of
every class seen under standard evaluation (see `lifelong.strategies.episodes`).

Simplifications: one embedding f for support and queries, without the paper's full-context
embeddings (the bidirectional LSTM g over the support set and the attention LSTM for f); cosine
similarities are multiplied by a fixed `scale` (an inverse temperature; the paper uses 1, which
makes the attention almost uniform and training slow).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from lifelong.strategies.episodes import EpisodicParams, EpisodicStrategy


class MatchingParams(EpisodicParams):
    scale: float = Field(default=10.0, gt=0, le=1000, description="inverse temperature on cosine similarities")


class MatchingNetworks(EpisodicStrategy):
    Params = MatchingParams

    def support_logits(self, z_support, y_support, z_query, n_classes):
        """log P(class): log of the attention mass each class receives from the query."""
        cosine = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
        attention = torch.softmax(self.params.scale * cosine, dim=1)
        return torch.log(attention @ F.one_hot(y_support, n_classes).to(attention.dtype))
