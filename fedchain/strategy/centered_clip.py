"""Centered clipping: move a center by the average of the clipped differences to it.

Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021
(arXiv:2012.10333), section 4, the centered-clipping aggregator (CC) of Algorithm 2:
``v_{l+1} = v_l + (1/n) sum_i (x_i - v_l) * min(1, tau / ||x_i - v_l||_2)``, iterated L times.
In the paper the x_i are the workers' momenta and v_0 is the previous round's aggregate; here the
x_i are the round's deltas (after any ``pre`` aggregators, :mod:`fedchain.strategy.robust`) and the
rule is stateless: v_0 is the coordinate-wise median of the deltas (``start="median"``, the
default, a robust guess close to the honest center) or the zero delta (``start="zero"``, as in the
byzfl library).

Parameters: ``tau`` (clip radius, default 1.0, > 0, in the units of the delta's L2 norm),
``iterations`` (L, default 1, integer 1..100), ``start`` ("median" or "zero"). The new model is
``float32(base + v_L)``. Sample counts are ignored. Weights: 1/n each (every input moves the center
by at most tau/n per iteration); ``details`` = ``{"clipped": {node: distance}}``, the inputs whose
distance to the center exceeded tau in the last iteration.

Determinism: each distance is a fixed-order float64 sum (per tensor in name order, elements in C
order), ``min(1, tau / d)`` is one division, the clipped differences are added in node order in
float64 and divided once by n. Memory: the deltas and one center (float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedchain.strategy.aggregate import squared_distance
from fedchain.strategy.median import coordinate_median
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point
from fedchain.strategy.robust import RobustStrategy


class CenteredClip(RobustStrategy):
    name = "centered_clip"
    PARAMS = {
        "tau": Param("float", 1.0, "clip radius (L2)", lo=0.0, lo_open=True),
        "iterations": Param("int", 1, "clipping iterations L", lo=1, hi=100),
        "start": Param("str", "median", "initial center", choices=("median", "zero")),
    }

    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        n = len(points)
        tau = np.float64(self._params["tau"])
        if self._params["start"] == "median":
            v = coordinate_median(points, names)
        else:
            v = {k: np.zeros(np.shape(points[0].delta[k]), dtype=np.float64) for k in names}
        clipped: dict[str, float] = {}
        for _ in range(int(self._params["iterations"])):
            clipped = {}
            acc = {k: np.zeros_like(v[k]) for k in names}
            for p in points:
                d = np.sqrt(squared_distance(p.delta, v, names))
                scale = np.float64(1.0)
                if d > tau:
                    scale = tau / d
                    clipped[p.label] = float(d)
                for k in names:
                    diff = np.subtract(p.delta[k], v[k])
                    if scale != 1.0:
                        np.multiply(diff, scale, out=diff)
                    np.add(acc[k], diff, out=acc[k])
            for k in names:
                np.divide(acc[k], np.float64(n), out=acc[k])
                v[k] = np.add(v[k], acc[k])
        return v, [1.0 / n] * n, {"clipped": clipped}
