"""Gaussian noise: send random noise instead of (or on top of) the honest delta.

The "Gaussian Byzantine" worker of Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with
Adversaries: Byzantine Tolerant Gradient Descent" (Krum), NeurIPS 2017, section 5: its vector is
drawn from a Gaussian, N(0, sigma^2 I). ``mode="replace"`` (default) sends the noise alone;
``mode="add"`` sends ``delta + noise``. ``sigma`` is absolute (in weight units per coordinate;
0.1 by default, about 2x the size of an options-iv delta in round 1 and far more later).
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param


class GaussianNoise(Attack):
    name = "noise"
    paper = "Blanchard et al., Krum, NeurIPS 2017 (Gaussian Byzantine worker)"
    PARAMS = {
        "sigma": Param(0.1, float, low=0.0, help="standard deviation of each coordinate's noise"),
        "mode": Param("replace", str, choices=("replace", "add"), help="send noise alone, or delta + noise"),
    }

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        own = np.asarray(own, dtype=np.float64)
        noise = ctx.rng.normal(0.0, self["sigma"], size=own.shape)
        return noise if self["mode"] == "replace" else own + noise
