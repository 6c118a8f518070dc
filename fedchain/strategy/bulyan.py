"""Bulyan: Krum-select n - 2f deltas, then per coordinate average the beta values closest to the
median.

El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed Learning in Byzantium",
ICML 2018 (arXiv:1802.07927), section 4 (Bulyan, equations for S and M): with theta = n - 2f,
a selection set S is built by applying Krum recursively: the input with the best Krum score among
the remaining ones R is moved from R to S until |S| = theta. Then with beta = theta - 2f, each
coordinate i of the result is the mean of the beta values of S at coordinate i that are closest to
the median of S at coordinate i. It requires ``n >= 4f + 3``; with fewer inputs the rule raises
AggregationError saying so.

Parameter ``f`` (default 1, integer >= 0). Inputs are the deltas after any ``pre`` aggregators
(:mod:`fedchain.strategy.robust`); the new model is ``float32(base + result)``. Sample counts are
ignored. Weights: 1/theta for each node in S (which ones of S survive differs per coordinate), 0
for the others; ``details`` = ``{"selected": [S in selection order]}``.

Choices the paper leaves open, fixed here: Krum on R scores each input by its
``max(1, |R| - f - 2)`` closest others in R (at most |R| - 1: the last, small R would otherwise
score nobody), equal scores go to the lower node address, and among values equally close to the
median the smaller value wins (a stable sort of the distances over the sorted values).

Determinism: distances are computed once, as in Krum; per tensor the theta deltas are sorted along
the node axis, the median is as in :mod:`fedchain.strategy.median`, the distances ``|x - median|``
are ordered with a stable argsort, and the beta chosen values are added in sorted order in float64
and divided once by beta. Memory: every delta at once, plus n^2 distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedchain.strategy.aggregate import sorted_rows
from fedchain.strategy.krum import F_PARAM
from fedchain.strategy.median import median_of_sorted
from fedchain.strategy.points import Point
from fedchain.strategy.robust import RobustStrategy, by_score, krum_scores, pairwise_sq_distances


def closest_to_median_mean(rows: np.ndarray, beta: int) -> np.ndarray:
    """Per column of ``rows`` (sorted along axis 0): the mean of the ``beta`` values closest to the
    column's median, ties to the smaller value."""
    med = median_of_sorted(rows)
    dist = np.abs(np.subtract(rows, med))
    order = np.argsort(dist, axis=0, kind="stable")
    chosen = np.zeros(rows.shape, dtype=bool)
    np.put_along_axis(chosen, order[:beta], True, axis=0)
    acc = np.zeros(rows.shape[1:], dtype=np.float64)
    for r in range(rows.shape[0]):
        np.add(acc, np.where(chosen[r], rows[r], 0.0), out=acc)
    np.divide(acc, np.float64(beta), out=acc)
    return acc


class Bulyan(RobustStrategy):
    name = "bulyan"
    PARAMS = {"f": F_PARAM}

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        n, f = len(points), int(self._params["f"])
        self.need(n >= 4 * f + 3, f"needs n >= 4f + 3 inputs (El Mhamdi et al. 2018), got n={n} with f={f}")
        theta, beta = n - 2 * f, n - 4 * f
        dist = pairwise_sq_distances(points, names)
        remaining = list(range(n))
        selected: list[int] = []
        while len(selected) < theta:
            best = by_score(krum_scores(dist, remaining, f, min_neighbours=1))[0]
            selected.append(best)
            remaining.remove(best)
        s_points = sorted(selected)
        delta = {k: closest_to_median_mean(sorted_rows([points[i].delta[k] for i in s_points]), beta) for k in names}
        weights = [0.0] * n
        for i in selected:
            weights[i] = 1.0 / theta
        return delta, weights, {"selected": [points[i].label for i in selected]}
