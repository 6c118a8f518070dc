"""Coordinate-wise trimmed mean of the deltas.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (arXiv:1803.01498), Algorithm 1, option II, and Definition 2 (the
coordinate-wise beta-trimmed mean): for each coordinate, remove the largest and the smallest
beta fraction of the n values and average the remaining ones.

Parameter ``beta`` (default 0.1, 0 <= beta < 0.5): the fraction trimmed on *each* side. The
number trimmed per side is ``k = floor(beta * n)``, computed exactly on the decimal value of beta
(``Fraction(repr(beta))``, so beta=0.29 with n=100 trims 29, as written), leaving n - 2k >= 1
values. beta=0 is the plain mean. Sample counts are ignored; the reported weight of each node is
1/n (which values survive differs per coordinate).

Determinism: per tensor the float64 deltas are sorted along the node axis (``np.sort``), rows k to
n-k-1 are added in that order in float64 and divided once by n - 2k. Memory: every update of a
tensor at once.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from fedchain.strategy.aggregate import sorted_rows
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point
from fedchain.strategy.robust import RobustStrategy


def trimmed_count(beta: float, n: int) -> int:
    """Values trimmed on each side: ``floor(beta * n)`` with beta read as the decimal it prints as."""
    return int(math.floor(Fraction(repr(float(beta))) * n))


def trimmed_mean_of_sorted(rows: np.ndarray, k: int) -> np.ndarray:
    n = rows.shape[0]
    acc = np.array(rows[k], dtype=np.float64, copy=True)
    for r in range(k + 1, n - k):
        np.add(acc, rows[r], out=acc)
    np.divide(acc, np.float64(n - 2 * k), out=acc)
    return acc


class TrimmedMean(RobustStrategy):
    name = "trimmed_mean"
    PARAMS = {"beta": Param("float", 0.1, "fraction trimmed on each side", lo=0.0, hi=0.5, hi_open=True)}

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        n = len(points)
        k = trimmed_count(self._params["beta"], n)
        self.need(n - 2 * k >= 1, f"beta={self._params['beta']} trims {k} of {n} on each side, leaving nothing")
        out = {name: trimmed_mean_of_sorted(sorted_rows([p.delta[name] for p in points]), k) for name in names}
        return out, [1.0 / n] * n, {"trimmed_per_side": k}
