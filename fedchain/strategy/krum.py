"""Krum: the one delta closest to its n - f - 2 nearest neighbours.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017, section 4 (the Krum function): for each of the n inputs V_i the
score is ``s(i) = sum_{i -> j} ||V_i - V_j||^2`` over the n - f - 2 inputs closest to V_i (i -> j),
and Krum outputs the V_i of smallest score. It requires ``n > 2f + 2`` (Proposition 1); with fewer
inputs the rule raises AggregationError.

Parameter ``f`` (default 1, integer >= 0): the number of hostile nodes assumed. The inputs are
the deltas (after any ``pre`` aggregators, :mod:`fedchain.strategy.robust`); the new model is
``float32(base + V_selected)``. Sample counts are ignored. Weights: 1 for the selected node, 0 for
the others; ``details`` = ``{"selected": [node], "scores": {node: score}}``.

Determinism: each ``||V_i - V_j||^2`` is computed once (i < j) as fixed-order float64 sums
(:func:`~fedchain.strategy.aggregate.squared_distance`: per tensor in name order, elements in C
order); each score adds its sorted distances in ascending order; equal scores go to the lower
node address. Memory: every delta at once (n x model size, float64), plus n^2 distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedchain.strategy.params import Param
from fedchain.strategy.points import Point
from fedchain.strategy.robust import RobustStrategy, by_score, krum_scores, pairwise_sq_distances

F_PARAM = Param("int", 1, "number of hostile nodes assumed", lo=0)


class Krum(RobustStrategy):
    name = "krum"
    PARAMS = {"f": F_PARAM}

    def scored(self, points: list[Point], names: list[str]) -> tuple[list[int], dict[int, float]]:
        n, f = len(points), int(self._params["f"])
        self.need(n > 2 * f + 2, f"needs n > 2f + 2 inputs (Blanchard et al. 2017), got n={n} with f={f}")
        scores = krum_scores(pairwise_sq_distances(points, names), range(n), f)
        return by_score(scores), scores

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        order, scores = self.scored(points, names)
        best = order[0]
        weights = [0.0] * len(points)
        weights[best] = 1.0
        delta = {k: np.array(points[best].delta[k], dtype=np.float64, copy=True) for k in names}
        return delta, weights, {"selected": [points[best].label],
                                "scores": {points[i].label: scores[i] for i in range(len(points))}}
