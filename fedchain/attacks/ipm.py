"""IPM, inner product manipulation: send ``-epsilon`` times the honest mean.

Xie, Koyejo, Gupta, "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product
Manipulation", UAI 2020 (arXiv:1903.03936), section 4: every hostile worker sends
``-epsilon * mean(honest)``, so the aggregate's inner product with the true update turns
negative (large epsilon, against the mean) or a rule that trusts small vectors (Krum, median)
picks a vector that makes no progress (small epsilon; the paper uses 0.1 and 0.5).
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param, honest_stats


class IPM(Attack):
    name = "ipm"
    paper = "Xie, Koyejo, Gupta, UAI 2020"
    omniscient = True
    PARAMS = {"epsilon": Param(0.5, float, low=0.0, help="the sent delta is -epsilon x the honest mean")}

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        mu, _ = honest_stats(ctx.honest)
        return -self["epsilon"] * mu
