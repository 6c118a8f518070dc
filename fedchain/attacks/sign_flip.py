"""Sign flip: send the honest delta reversed, ``-scale * delta``.

The classic "reversed gradient" Byzantine behaviour, e.g. Damaskinos, El Mhamdi, Guerraoui, Patra,
Taziki, "Asynchronous Byzantine Machine Learning (the case of SGD)", ICML 2018 (arXiv:1802.07928),
and Li, Xu, Chen, Giannakis, Ling, "RSA: Byzantine-Robust Stochastic Aggregation Methods for
Distributed Learning from Heterogeneous Datasets", AAAI 2019 (the "sign-flipping attack"): the
hostile worker trains honestly and sends ``-scale`` times its update (``scale`` 1 by default).
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param


class SignFlip(Attack):
    name = "sign_flip"
    paper = "Li et al., RSA, AAAI 2019 (sign-flipping attack)"
    PARAMS = {"scale": Param(1.0, float, low=0.0, help="the sent delta is -scale x the honest delta")}

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        return -self["scale"] * np.asarray(own, dtype=np.float64)
