"""The common frame of the robust rules (median, trimmed mean, Krum, Multi-Krum, Bulyan, centered
clipping): deltas, pre-aggregators, and per-node weights.

Every robust rule works on deltas ``x_i = float64(update_i) - float64(base)`` (one per node, in
node-address order, lowercase), optionally transformed by the pre-aggregators listed in its
``pre`` parameter, in the order given::

    {"name": "krum", "params": {"f": 2, "pre": [{"name": "clip", "c": 1.0}, {"name": "bucketing", "s": 2}]}}

then combines the resulting points into one float64 delta ``d`` and returns
``float32(float64(base) + d)``. **Sample counts are ignored**: every point counts once, whatever
its committed ``num_samples`` (a hostile node could otherwise claim the cap and outweigh honest
ones; the cap still bounds FedAvg-style rules).

The per-node weights in the :class:`~fedchain.strategy.base.StepResult` are each point's weight in
the rule (1/n for order statistics, 1 or 1/m for the selected points of Krum-style rules, 0 for
the rest) shared equally among the nodes a point stands for. ``details`` holds the rule's facts
(e.g. ``selected``) and, under ``pre``, one entry per pre-aggregator (``clipped`` norms, the
``buckets``). Every value in them is computed with the fixed-order helpers, so ``verify``
reproduces them to the bit.

Common parameters: ``pre`` (list, default empty) and ``seed`` (integer >= 0, default 0: the
permutation seed of bucketing, which the aggregator fills from the round seed).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from fedchain.errors import ConfigError
from fedchain.strategy.aggregate import as_f64, squared_distance
from fedchain.strategy.base import AggregationError, ClientUpdate, StepResult, Strategy, check_same_spec, ordered_updates
from fedchain.strategy.bucketing import Bucketing
from fedchain.strategy.clipping import Clip
from fedchain.strategy.params import Param, check_params
from fedchain.strategy.nnm import NearestNeighbourMixing
from fedchain.strategy.points import Point, PreAggregator, delta_of, pairwise_sq_distances  # noqa: F401 (re-exported)

#: name -> pre-aggregator class.
PRE_AGGREGATORS: dict[str, type[PreAggregator]] = {c.name: c for c in (Clip, Bucketing, NearestNeighbourMixing)}


def _check_pre(rule: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"strategy {rule}: parameter pre must be a list of objects like "
                          f'{{"name": "clip", "c": 1.0}}, got {value!r}')
    out = []
    for entry in value:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"strategy {rule}: each pre entry must be an object with a name, got {entry!r}")
        cls = PRE_AGGREGATORS.get(entry["name"])
        if cls is None:
            raise ConfigError(f"strategy {rule}: unknown pre-aggregator {entry['name']!r}; "
                              f"known: {', '.join(sorted(PRE_AGGREGATORS))}")
        params = check_params(f"{rule} (pre {cls.name})", {k: v for k, v in entry.items() if k != "name"}, cls.PARAMS)
        out.append({"name": cls.name, **params})
    return out


COMMON_PARAMS: dict[str, Param] = {
    "pre": Param("any", [], "pre-aggregators applied in order, e.g. [{\"name\": \"clip\", \"c\": 1.0}]"),
    "seed": Param("int", 0, "bucketing's permutation seed (the aggregator fills in the round seed)", lo=0),
}


class RobustStrategy(Strategy):
    """Base of the robust rules. Subclasses set ``name`` and ``PARAMS`` and implement ``combine``."""

    robust = True
    PARAMS: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params: Any) -> None:
        spec = {**COMMON_PARAMS, **self.PARAMS}
        spec["pre"] = Param("any", [], COMMON_PARAMS["pre"].help, check=lambda _n, v: _check_pre(self.name, v))
        super().__init__(**check_params(self.name, params, spec))
        self._pre = [PRE_AGGREGATORS[e["name"]](**{k: v for k, v in e.items() if k != "name"})
                     for e in self._params["pre"]]

    @classmethod
    def param_names(cls) -> list[str]:
        return sorted({**COMMON_PARAMS, **cls.PARAMS})

    @property
    def params(self) -> dict[str, Any]:
        p = dict(self._params)
        p["pre"] = [dict(e) for e in p["pre"]]
        return p

    def points(self, base: Mapping[str, np.ndarray], updates: Sequence[ClientUpdate]) -> tuple[list[Point], list[str], list[dict[str, Any]]]:
        """The rule's inputs after the pre-aggregators, the tensor names, and the pre details."""
        ordered = ordered_updates(updates)
        check_same_spec(base, ordered)
        names = sorted(base)
        pts = [Point(u.node, (u.node,), delta_of(u.weights, base, names)) for u in ordered]
        pre_details = []
        for pre in self._pre:
            pts, d = pre.apply(self.name, pts, names, int(self._params["seed"]))
            pre_details.append(d)
        return pts, names, pre_details

    def step(
        self,
        base: Mapping[str, np.ndarray],
        updates: Sequence[ClientUpdate],
        state: Mapping[str, np.ndarray] | None = None,
    ) -> StepResult:
        pts, names, pre_details = self.points(base, updates)
        delta, point_weights, details = self.combine(pts, names)
        model = {}
        for name in names:
            out = np.add(as_f64(base[name]), delta[name])
            model[name] = out.astype(np.float32)
        weights: dict[str, float] = {}
        for p, w in zip(pts, point_weights):
            share = float(w) / len(p.members)
            for m in p.members:
                weights[m] = weights.get(m, 0.0) + share
        if pre_details:
            details = dict(details, pre=pre_details)
        return StepResult(model=model, weights=weights, state=None, details=details)

    def weights(self, updates: Sequence[ClientUpdate]) -> dict[str, float]:
        """Without the base model only the equal share 1/n of each accepted node is known (used for
        rounds below quorum, which produce no model); :meth:`step` gives the effective weights."""
        ordered = ordered_updates(updates)
        return {u.node: 1.0 / len(ordered) for u in ordered}

    @abstractmethod
    def combine(self, points: list[Point], names: list[str]) -> tuple[dict[str, np.ndarray], list[float], dict[str, Any]]:
        """The aggregated float64 delta, each point's weight, and JSON-able details."""

    def need(self, ok: bool, message: str) -> None:
        """Raise AggregationError naming the rule unless ``ok``."""
        if not ok:
            raise AggregationError(f"strategy {self.name}: {message}")


def krum_scores(dist: Sequence[Sequence[float]], among: Sequence[int], f: int, *, min_neighbours: int = 0) -> dict[int, float]:
    """Krum's score of each index in ``among``: the sum of its squared distances to its
    ``len(among) - f - 2`` closest others in ``among`` (at least ``min_neighbours``, at most all
    others), added in ascending order in float64 (Blanchard et al. 2017, section 4)."""
    k = min(max(len(among) - f - 2, min_neighbours), len(among) - 1)
    scores = {}
    for i in among:
        row = sorted(dist[i][j] for j in among if j != i)
        s = 0.0
        for v in row[:k]:
            s = s + v
        scores[i] = s
    return scores


def by_score(scores: Mapping[int, float]) -> list[int]:
    """Indices sorted by (score, index): ties go to the lower node address."""
    return sorted(scores, key=lambda i: (scores[i], i))
