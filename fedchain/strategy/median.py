"""Coordinate-wise median of the deltas.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (arXiv:1803.01498), Algorithm 1 ("robust distributed gradient
descent"), option I, with the coordinate-wise median of Definition 1: the server takes, for each coordinate separately, the median of the n workers' values
(for even n the mean of the two middle values) and steps with it.

Here the values are the deltas ``update - base`` (see :mod:`fedchain.strategy.robust`, which also
applies the optional ``pre`` aggregators); the new model is ``float32(base + median)``. Sample
counts are ignored. The reported weight of each node is 1/n: an order statistic has no per-node
weight, and every node took part equally in choosing it.

Determinism: the deltas of each tensor are stacked in float64 along a node axis and sorted with
``np.sort`` (its output does not depend on the sort algorithm once -0.0 is made +0.0); the median
is the middle row, or ``(a + b) / 2`` of the two middle rows, one add and one division each.
Memory: every update of a tensor at once (n x tensor size, float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedchain.strategy.aggregate import sorted_rows
from fedchain.strategy.points import Point
from fedchain.strategy.robust import RobustStrategy


def median_of_sorted(rows: np.ndarray) -> np.ndarray:
    """The median along axis 0 of rows already sorted along it (float64)."""
    n = rows.shape[0]
    if n % 2:
        return np.array(rows[n // 2], dtype=np.float64, copy=True)
    out = np.add(rows[n // 2 - 1], rows[n // 2])
    np.divide(out, np.float64(2.0), out=out)
    return out


def coordinate_median(points: list[Point], names: list[str]) -> dict[str, np.ndarray]:
    return {k: median_of_sorted(sorted_rows([p.delta[k] for p in points])) for k in names}


class Median(RobustStrategy):
    name = "median"
    PARAMS = {}

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        n = len(points)
        return coordinate_median(points, names), [1.0 / n] * n, {}
