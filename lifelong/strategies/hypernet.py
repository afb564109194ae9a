"""Parameter generation: a hypernetwork writes the task's classifier head from its support set.

In the spirit of Ha et al. 2017 ("HyperNetworks") and, closest, Qiao et al. 2018 ("Few-Shot Image
Recognition by Predicting Parameters from Activations") and Gidaris & Komodakis 2018 ("Dynamic
Few-Shot Visual Learning without Forgetting"): for each class c of the support set, a generator
g maps the class's mean embedding m_c to the weights and bias of its output unit,

    w_c = m_c + g_w(m_c),   b_c = -||m_c||^2 / 2 + g_b(m_c),   logit_c(x) = w_c . f(x) + b_c,

so the task-specific parameters are generated, never optimised. g's last layer starts at zero,
so an untrained generator is exactly the nearest-class-mean classifier (w . z - ||w||^2/2 ranks
classes as -||z - m||^2/2); meta-training learns the correction. The embedding f and g are
trained episodically on each task (cross-entropy of the queries under the generated head).
Few-shot evaluation generates the head from the task's support set; standard evaluation from the
class-balanced exemplar memory of every class seen, so all seen classes compete. Classes without
support get logit -inf.

Not to be confused with `hnet` (von Oswald et al. 2020), a continual learner whose hypernetwork
writes all of the target network's weights from a learned task embedding.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from lifelong.seeding import derive_seed
from lifelong.strategies.episodes import EpisodicParams, EpisodicStrategy, class_means


class HyperNetParams(EpisodicParams):
    generator_hidden: int = Field(default=256, ge=1, description="hidden width of the weight generator")


class HyperNet(EpisodicStrategy):
    Params = HyperNetParams

    def extra_modules(self, embedding_dim: int) -> dict[str, nn.Module]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.ctx.seed, "init", 0, 1))
            generator = nn.Sequential(nn.Linear(embedding_dim, self.params.generator_hidden), nn.ReLU(),
                                      nn.Linear(self.params.generator_hidden, embedding_dim + 1))
        nn.init.zeros_(generator[-1].weight)
        nn.init.zeros_(generator[-1].bias)
        return {"generator": generator.to(self.ctx.device)}

    def head(self, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated (weights (C, D), biases (C,)) from class mean embeddings (C, D)."""
        delta = self.net["generator"](means)
        return means + delta[:, :-1], -0.5 * (means * means).sum(1) + delta[:, -1]

    def support_logits(self, z_support, y_support, z_query, n_classes):
        means, counts = class_means(z_support, y_support, n_classes)
        weights, biases = self.head(means)
        return (z_query @ weights.T + biases).masked_fill(counts == 0, float("-inf"))
