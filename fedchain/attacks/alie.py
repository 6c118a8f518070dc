"""ALIE, "A Little Is Enough": a small, coordinated shift inside the honest spread.

Baruch, Baruch, Goldberg, "A Little Is Enough: Circumventing Defenses For Distributed Learning",
NeurIPS 2019 (arXiv:1902.06156), section 3 and Algorithm 3. With n workers of which f are hostile,
the attackers need ``s = floor(n/2 + 1) - f`` honest "supporters" for a majority, and pick the
largest z with ``Phi(z) < (n - s) / n``, i.e. ``z_max = Phi^-1((n - s) / n)`` (Phi: standard normal
CDF). Each hostile worker sends, coordinate by coordinate, ``mu_j - z_max sigma_j``, with mu and
sigma the mean and standard deviation of the honest updates (every hostile worker the same
vector). ``z`` overrides z_max. The shift stays within the honest spread, so median-, trimming-
and distance-based rules keep it, and it accumulates over rounds.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param, honest_stats
from fedchain.errors import ConfigError


def alie_z(n: int, f: int) -> float:
    """The paper's z_max for n workers, f of them hostile."""
    if n < 1 or not 0 <= f <= n:
        raise ConfigError(f"ALIE needs 0 <= f <= n and n >= 1, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    if not 0.0 < p < 1.0:  # s <= 0 (attackers alone are a majority) or s >= n
        return 0.0 if p <= 0.0 else float("inf")
    return NormalDist().inv_cdf(p)


class ALIE(Attack):
    name = "alie"
    paper = "Baruch, Baruch, Goldberg, NeurIPS 2019"
    omniscient = True
    PARAMS = {"z": Param(-1.0, float, help="z to use; negative: the paper's z_max for the round's n and f")}

    def z_for(self, n: int, f: int) -> float:
        return self["z"] if self["z"] >= 0 else alie_z(n, f)

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        mu, sigma = honest_stats(ctx.honest)
        z = self.z_for(ctx.n, ctx.f)
        if not math.isfinite(z):
            raise ConfigError(f"ALIE: z_max is infinite for n={ctx.n}, f={ctx.f}; give z")
        return mu - z * sigma
