"""Secure mode's merge: FedAvg with capped weights over the unmasked fixed-point sum.

Pure functions of public data, shared by the aggregator, ``fedchain verify`` and the benchmarks.

Node u of a secure round clips its delta to C, scales it by its weight
``w_u = min(n_u, max_samples) / max_samples`` (``n_u`` its on-chain sample count, so ``w_u`` is in
(0, 1] and the clip bound, hence the DP sensitivity, still holds), quantises and masks it. The
unmasked sum over the survivors C' is therefore ``Σ w_u Δ_u`` in fixed point, and the new model is

    model = base + dequantize(Σ) / Σ_{u ∈ C'} w_u          (float64, cast to the base's dtype)

which is FedAvg's sample-weighted mean with weights capped at ``max_samples`` (up to the
quantisation error of less than |C'| / 2^k per coordinate before the division, and the DP noise).
Every operation is elementwise numpy in a fixed order: the result is the same to the bit on any
machine.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fedchain.codec import FixedPointConfig, dequantize

__all__ = ["secure_model", "secure_weight", "weight_sum"]


def secure_weight(num_samples: int, max_samples: int) -> float:
    """The weight a node applies to its clipped delta before quantising: ``min(n, cap) / cap``."""
    if max_samples < 1 or num_samples < 1:
        raise ValueError(f"sample count {num_samples} and cap {max_samples} must be positive")
    return min(int(num_samples), int(max_samples)) / float(max_samples)


def weight_sum(samples: list[int], max_samples: int) -> float:
    """Σ w_u over the survivors, in their protocol order (a fixed summation order)."""
    total = 0.0
    for n in samples:
        total += secure_weight(n, max_samples)
    return total


def secure_model(
    base: Mapping[str, np.ndarray],
    total: Mapping[str, np.ndarray],
    fixed: FixedPointConfig,
    weights: float,
) -> dict[str, np.ndarray]:
    """The new model from the unmasked sum ``total`` (residues modulo 2^M) and Σ w_u."""
    if not weights > 0:
        raise ValueError(f"the survivors' weights must sum to a positive number, got {weights}")
    mean = dequantize(total, fixed)
    if set(mean) != set(base):
        raise ValueError("the unmasked sum and the base model have different tensor names")
    out = {}
    for name in sorted(base):
        b = np.asarray(base[name])
        out[name] = (b.astype(np.float64) + mean[name].reshape(b.shape) / weights).astype(b.dtype)
    return out
