"""What robust rules and pre-aggregators work on: deltas (update - base) in float64.

A :class:`Point` is one input of a robust rule: one node's delta, or after bucketing the mean of a
bucket of nodes' deltas. It remembers which nodes it stands for, so the rule's per-point weights
turn back into per-node weights (a point's weight is shared equally by its members).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from fedchain.strategy.aggregate import as_f64, squared_distance
from fedchain.strategy.params import Param


@dataclass(frozen=True)
class Point:
    """``label``: the node address for a single node, ``bucket<i>`` for a bucket; ``members``: the
    node addresses it stands for; ``delta``: float64 arrays by tensor name."""

    label: str
    members: tuple[str, ...]
    delta: Mapping[str, np.ndarray]


def delta_of(update: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """``float64(update) - float64(base)`` per tensor, with -0.0 turned into +0.0."""
    out = {}
    for name in names:
        d = np.subtract(as_f64(update[name]), as_f64(base[name]))
        np.add(d, 0.0, out=d)
        out[name] = d
    return out


def pairwise_sq_distances(points: Sequence[Point], names: Sequence[str]) -> list[list[float]]:
    """``D[i][j] = ||x_i - x_j||^2`` (symmetric, D[i][i] = 0), each computed once for i < j with
    :func:`~fedchain.strategy.aggregate.squared_distance` (fixed order)."""
    n = len(points)
    d = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            v = float(squared_distance(points[i].delta, points[j].delta, names))
            d[i][j] = d[j][i] = v
    return d


class PreAggregator(ABC):
    """A transformation of the points applied before the rule (``params["pre"]`` entries)."""

    name: ClassVar[str]
    PARAMS: ClassVar[dict[str, Param]]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def apply(self, rule: str, points: list[Point], names: Sequence[str], seed: int) -> tuple[list[Point], dict[str, Any]]:
        """The new points and JSON-able details for the report."""
