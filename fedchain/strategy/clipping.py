"""Norm clipping (pre-aggregator ``{"name": "clip", "c": C}``): each delta is scaled to an L2 norm
of at most C.

Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated Learning?", 2019
(arXiv:1911.07963), section 3 ("norm thresholding of updates"): the server replaces each update
delta by ``x_i * min(1, C / ||x_i||_2)`` before averaging, which bounds what any one node can move
the model. The same operation is the ``Clipping`` pre-aggregator of the byzfl library (Allouah et
al., "Fixing by Mixing", AISTATS 2023), composable in front of any robust rule.

Determinism: ``||x||^2`` is the fixed-order sum of :func:`~fedchain.strategy.aggregate.squared_norm`
(per tensor in name order, elements in C order, float64), ``sqrt`` and ``C / ||x||`` are single
IEEE operations, and the scaling is one float64 multiplication per element. The report's
``clipped`` lists the nodes (points) that were scaled, with their norm before clipping.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fedchain.strategy.aggregate import squared_norm
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point, PreAggregator


class Clip(PreAggregator):
    name = "clip"
    PARAMS = {"c": Param("float", 1.0, "largest L2 norm of a delta", lo=0.0, lo_open=True)}

    def apply(self, rule: str, points: list[Point], names: Sequence[str], seed: int) -> tuple[list[Point], dict[str, Any]]:
        c = np.float64(self.params["c"])
        out: list[Point] = []
        clipped: dict[str, float] = {}
        for p in points:
            norm = np.sqrt(squared_norm(p.delta, names))
            if norm > c:
                factor = c / norm
                clipped[p.label] = float(norm)
                p = Point(p.label, p.members, {k: np.multiply(p.delta[k], factor) for k in names})
            out.append(p)
        return out, {"name": self.name, "clipped": clipped}
