"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017, arXiv:1703.03400).

MAML learns an initialisation from which a few SGD steps on a task's support set reach a low
loss on its query set. The meta-gradient differentiates through those inner steps, Hessian-
vector products included (second order). On a lifelong stream it meta-trains on the episodes of
each task in turn; see `lifelong.strategies.meta_base` for the protocol.

Second order or first order: backpropagating through the inner loop keeps every inner step's
activations and gradients alive until the outer backward pass, so memory grows linearly with
`inner_steps`; first order does not. Measured on Finn et al.'s sinusoid setup (MLP 1-40-40-1,
meta-batch 25, K = 10; benchmarks/RESULTS.md, "Meta-learning"): peak memory of one
meta-iteration 0.78 / 1.85 / 3.21 / 5.95 MB for 1 / 5 / 10 / 20 inner steps, against a flat
0.48-0.65 MB first order, and about twice the time per iteration. Memory scales with
meta-batch x examples x layer widths, so: keep second order for a few inner steps on small
networks (there the two reached the same quality within run-to-run noise: MSE 0.578 vs 0.562
after one step in one run, 0.579 vs 0.675 in another); set `first_order: true` (the same as the
`fomaml` strategy) when a deeper backbone or more than a handful of inner steps runs out of
memory, or when meta-iterations per second matter more than the last bit of quality.
"""

from __future__ import annotations

from pydantic import Field

from lifelong.strategies.meta_base import MetaLearner, QueryMetaParams


class MAMLParams(QueryMetaParams):
    first_order: bool = Field(default=False, description="drop the second-order terms (then: FOMAML)")


class MAML(MetaLearner):
    """Second-order MAML (first order with `first_order: true`)."""

    Params = MAMLParams

    @property
    def first_order(self) -> bool:
        return self.params.first_order
