"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, section 5.2; analysed by Nichol, Achiam &
Schulman 2018, arXiv:1803.02999).

MAML with the inner gradients treated as constants: the meta-gradient is the query-loss
gradient at the adapted parameters. No second derivatives, and memory that does not grow with
`inner_steps`; in Finn et al.'s experiments almost as good as MAML.
"""

from __future__ import annotations

from lifelong.strategies.meta_base import MetaLearner, QueryMetaParams


class FOMAML(MetaLearner):
    """MAML's loop with a first-order meta-gradient."""

    Params = QueryMetaParams

    @property
    def first_order(self) -> bool:
        return True
