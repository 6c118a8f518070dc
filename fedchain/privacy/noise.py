"""Each node's share of distributed Skellam noise (Agarwal, Kairouz, Liu, "The Skellam Mechanism
for Differentially Private Federated Learning", NeurIPS 2021).

Symmetric Skellam noise with variance v is Poisson(v/2) - Poisson(v/2): an integer, so it goes
through the modular arithmetic of secure aggregation untouched, and a sum of independent Skellams
is again Skellam with the variances added. So if each of m nodes adds a share of variance
``per_node_variance``, the unmasked sum carries Skellam noise of variance m * per_node_variance in
every coordinate, exactly the central mechanism the accountant charges for. Units are fixed-point
integers (the noise in model units has standard deviation sqrt(variance) / 2^k).

A round plans its noise for a lower bound on the contributors it can count on
(``min_contributors``: the threshold t, minus the nodes assumed to collude with the aggregator,
whose noise an adversary knows); :meth:`SkellamNoise.per_node_variance` is the share of one node.

The sampler is numpy's Poisson (``Generator(PCG64)`` from HKDF of the node's secret seed):
deterministic given the seed, but floating-point based, not an exact sampler in the sense of
Canonne, Kamath, Steinke (2020). docs/privacy.md says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from fedchain.codec import FixedPointConfig, rounding_generator
from fedchain.privacy import PrivacyError

__all__ = ["SkellamNoise", "add_noise", "node_noise", "noise_linf_bound", "skellam"]


@dataclass(frozen=True)
class SkellamNoise:
    """What a round config commits for DP noise. ``variance``: per-coordinate variance of the
    summed noise that the accountant charges for (integer units); ``min_contributors``: how many
    nodes' shares it is planned over (each node adds variance / min_contributors).

    JSON form: ``{"mechanism": "skellam", "min_contributors": 6, "variance": 1.0e9}``."""

    variance: float
    min_contributors: int

    def __post_init__(self) -> None:
        if isinstance(self.variance, bool) or not isinstance(self.variance, (int, float)) or not math.isfinite(self.variance) or self.variance < 0:
            raise PrivacyError(f"noise variance must be a non-negative finite number, got {self.variance!r}")
        if isinstance(self.min_contributors, bool) or not isinstance(self.min_contributors, int) or self.min_contributors < 1:
            raise PrivacyError(f"min_contributors must be a positive integer, got {self.min_contributors!r}")

    @property
    def per_node_variance(self) -> float:
        return float(self.variance) / self.min_contributors

    def summed_variance(self, contributors: int) -> float:
        """Variance of the noise actually in a sum of ``contributors`` nodes' shares."""
        return self.per_node_variance * contributors

    @classmethod
    def from_noise_multiplier(cls, z: float, l2_sensitivity: float, min_contributors: int) -> "SkellamNoise":
        """Noise with standard deviation z * l2_sensitivity (both in integer units)."""
        return cls(variance=float(z * l2_sensitivity) ** 2, min_contributors=min_contributors)

    def to_dict(self) -> dict[str, Any]:
        return {"mechanism": "skellam", "min_contributors": int(self.min_contributors), "variance": float(self.variance)}

    @classmethod
    def from_dict(cls, obj: Any) -> "SkellamNoise":
        if not isinstance(obj, Mapping) or set(obj) != {"mechanism", "min_contributors", "variance"} or obj["mechanism"] != "skellam":
            raise PrivacyError(f"noise config must be {{mechanism: skellam, min_contributors, variance}}, got {obj!r}")
        return cls(variance=float(obj["variance"]), min_contributors=obj["min_contributors"])


def skellam(size: int, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``size`` symmetric Skellam draws of the given variance, int64."""
    if variance <= 0:
        return np.zeros(size, dtype=np.int64)
    a = rng.poisson(variance / 2.0, size=size).astype(np.int64)
    b = rng.poisson(variance / 2.0, size=size).astype(np.int64)
    return a - b


def node_noise(spec: Mapping[str, tuple[int, ...]], noise: SkellamNoise, seed: bytes) -> dict[str, np.ndarray]:
    """One node's noise share (int64 arrays by name, coordinates drawn in name order) from its
    secret ``seed`` (>= 16 bytes, HKDF label ``noise``)."""
    rng = rounding_generator(seed, b"noise")
    names = sorted(spec)
    sizes = [math.prod(tuple(spec[n])) for n in names]
    flat = skellam(sum(sizes), noise.per_node_variance, rng)
    out, start = {}, 0
    for name, size in zip(names, sizes):
        out[name] = flat[start : start + size].reshape(tuple(spec[name]))
        start += size
    return out


def add_noise(residues: Mapping[str, np.ndarray], noise: Mapping[str, np.ndarray], config: FixedPointConfig) -> dict[str, np.ndarray]:
    """residues + noise modulo 2^M (noise int64, two's complement)."""
    if set(residues) != set(noise):
        raise PrivacyError("noise and update have different tensor names")
    return {
        name: np.asarray(residues[name], dtype=config.dtype) + np.asarray(noise[name], dtype=np.int64).astype(np.uint64).astype(config.dtype)
        for name in sorted(residues)
    }


def noise_linf_bound(variance: float, dim: int, log2_failure: float = -40.0) -> int:
    """An integer a with P[max_i |N_i| > a] <= 2^log2_failure for ``dim`` Skellam coordinates of
    ``variance`` (Chernoff: P[N >= a] <= exp(-a asinh(a/v) + v (sqrt(1 + (a/v)^2) - 1)), union bound
    over 2 * dim tails). Used as the noise allowance of the range check after unmasking."""
    if variance <= 0 or dim <= 0:
        return 0
    target = log2_failure * math.log(2.0) - math.log(2.0 * dim)

    def log_tail(a: float) -> float:
        r = a / variance
        return -a * math.asinh(r) + variance * (math.sqrt(1.0 + r * r) - 1.0)

    lo, hi = 0.0, max(1.0, math.sqrt(variance))
    while log_tail(hi) > target:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if log_tail(mid) > target:
            lo = mid
        else:
            hi = mid
    return int(math.ceil(hi))
