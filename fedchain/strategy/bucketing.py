"""Bucketing (pre-aggregator ``{"name": "bucketing", "s": S}``): average random buckets of S
deltas, then hand the bucket means to the robust rule.

Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing",
ICLR 2022 (arXiv:2006.09365), Algorithm 1: draw a random permutation pi of the n inputs, form
``ceil(n / s)`` buckets ``y_i = mean{x_pi(k) : (i-1)s < k <= min(is, n)}`` (the last bucket may be
smaller) and return ``Aggr(y_1, ..., y_ceil(n/s))``. Mixing heterogeneous honest updates this way
brings them closer together, so rules such as Krum or the median stop discarding honest outliers.

The permutation must be public and reproducible: it is the order of
``SHA-256("fedchain-bucketing" | seed | node address)`` (lowercase address, ``|`` a 0x00 byte),
where ``seed`` is the robust rule's ``seed`` parameter (the aggregator fills it from the round
seed, so it is committed in the round config). A hash, not numpy's generator, because numpy does
not promise the same stream across versions. Within a bucket the mean is taken in node-address
order with :func:`~fedchain.strategy.aggregate.ordered_mean` (float64). Sample counts are ignored.
The report lists the buckets.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from fedchain.strategy.aggregate import ordered_mean
from fedchain.strategy.params import Param
from fedchain.strategy.points import Point, PreAggregator


def bucket_order(labels: Sequence[str], seed: int) -> list[int]:
    """Indices of ``labels`` in permutation order (sorted by the hash key above)."""
    def key(i: int) -> bytes:
        return hashlib.sha256(b"fedchain-bucketing\x00" + str(int(seed)).encode() + b"\x00"
                              + labels[i].lower().encode()).digest()
    return sorted(range(len(labels)), key=key)


class Bucketing(PreAggregator):
    name = "bucketing"
    PARAMS = {"s": Param("int", 2, "bucket size", lo=1)}

    def apply(self, rule: str, points: list[Point], names: Sequence[str], seed: int) -> tuple[list[Point], dict[str, Any]]:
        s = int(self.params["s"])
        perm = bucket_order([p.label for p in points], seed)
        out: list[Point] = []
        for b, start in enumerate(range(0, len(perm), s)):
            group = sorted((points[i] for i in perm[start:start + s]), key=lambda p: p.label.lower())
            members = tuple(m for p in group for m in p.members)
            delta = {k: ordered_mean([p.delta[k] for p in group]) for k in names}
            out.append(Point(f"bucket{b}", members, delta))
        return out, {"name": self.name, "buckets": [list(p.members) for p in out]}
