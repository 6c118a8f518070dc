"""Nearest-neighbour mixing (pre-aggregator ``{"name": "nnm", "f": F}``): replace every delta by the
mean of its n - F nearest deltas (itself included), then hand the mixed deltas to the robust rule.

Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by Mixing: A Recipe for Optimal
Byzantine ML under Heterogeneity", AISTATS 2023 (arXiv:2302.01772), Algorithm 1 (NNM): for each
input x_i, let N_i be the n - f inputs closest to x_i in Euclidean distance (x_i among them), and
y_i = mean(N_i); return Aggr(y_1, ..., y_n). Mixing shrinks the honest inputs' spread towards their
mean while a minority of f hostile inputs can move each y_i only by a bounded amount, which lets
rules such as Krum, the median or the trimmed mean reach the optimal error under heterogeneity.

Deterministic: distances are :func:`~fedchain.strategy.points.pairwise_sq_distances` (fixed
summation order), ties are broken by node address, and each y_i is the
:func:`~fedchain.strategy.aggregate.ordered_mean` of its neighbours in node-address order. A mixed
point keeps its node's label and members, so the rule's weight for it stays that node's. The
report lists every node's neighbours.
"""

from __future__ import annotations

from typing import Any, Sequence

from fedchain.errors import ConfigError
from fedchain.strategy.aggregate import ordered_mean
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point, PreAggregator, pairwise_sq_distances


def nearest(dist: Sequence[Sequence[float]], labels: Sequence[str], i: int, k: int) -> list[int]:
    """The ``k`` indices closest to ``i`` (``i`` first: its distance is 0), ties by label."""
    order = sorted(range(len(labels)), key=lambda j: (j != i, dist[i][j], labels[j].lower()))
    return order[:k]


class NearestNeighbourMixing(PreAggregator):
    name = "nnm"
    PARAMS = {"f": Param("int", 1, "hostile inputs tolerated: each delta is mixed with its n - f nearest", lo=0)}

    def apply(self, rule: str, points: list[Point], names: Sequence[str], seed: int) -> tuple[list[Point], dict[str, Any]]:
        f = int(self.params["f"])
        n = len(points)
        if n - f < 1:
            raise ConfigError(f"strategy {rule} (pre nnm): f = {f} leaves no neighbours among {n} inputs",
                              hint="nnm needs f < the number of updates")
        labels = [p.label for p in points]
        dist = pairwise_sq_distances(points, names)
        out: list[Point] = []
        neighbours: dict[str, list[str]] = {}
        for i, p in enumerate(points):
            near = sorted(nearest(dist, labels, i, n - f), key=lambda j: labels[j].lower())
            out.append(Point(p.label, p.members, {k: ordered_mean([points[j].delta[k] for j in near]) for k in names}))
            neighbours[p.label] = [labels[j] for j in near]
        return out, {"name": self.name, "f": f, "neighbours": neighbours}
