"""Multi-Krum: the mean of the m deltas with the best Krum scores.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017, the Multi-Krum variant defined in the same paper: compute every input's Krum score
(:mod:`fedchain.strategy.krum`), select the m inputs with the smallest scores, and output their
average. m = 1 is Krum; m = n is the plain mean.

Parameters: ``f`` (default 1, integer >= 0; requires n > 2f + 2) and ``m`` (default null, meaning
n - f; an integer 1 <= m <= n). Sample counts are ignored: the average is unweighted. Weights:
1/m for each selected node, 0 for the others; ``details`` = ``{"selected": [...], "scores": {...}}``.

Determinism: scores as in Krum; the selected deltas are added in node-address order in float64
(:func:`~fedchain.strategy.aggregate.ordered_mean`) and divided once by m. Memory: every delta at
once, plus n^2 distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedchain.strategy.aggregate import ordered_mean
from fedchain.strategy.krum import F_PARAM, Krum
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point


class MultiKrum(Krum):
    name = "multi_krum"
    PARAMS = {"f": F_PARAM, "m": Param("int_or_null", None, "number of deltas averaged (null: n - f)", lo=1)}

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        n, f = len(points), int(self._params["f"])
        m = self._params["m"]
        m = n - f if m is None else int(m)
        order, scores = self.scored(points, names)
        self.need(m <= n, f"m={m} exceeds the number of inputs n={n}")
        chosen = sorted(order[:m])
        weights = [0.0] * n
        for i in chosen:
            weights[i] = 1.0 / m
        delta = {k: ordered_mean([points[i].delta[k] for i in chosen]) for k in names}
        return delta, weights, {"selected": [points[i].label for i in chosen],
                                "scores": {points[i].label: scores[i] for i in range(n)}}
