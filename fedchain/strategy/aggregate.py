"""Deterministic numeric building blocks for strategies: pure numpy, no BLAS.

Reductions such as ``np.sum``, ``np.average``, ``np.dot`` or ``tensordot`` may reorder additions
(pairwise summation, SIMD lanes, threaded BLAS), so their result can differ in the last bit between
machines or library versions. Everything here is elementwise: each output element is computed by
the same sequence of IEEE 754 operations, each rounded to nearest-even, in a fixed order, with no
fused multiply-add. docs/protocol.md ("Aggregation rule (FedAvg)") is the normative description.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedchain.strategy.base import AggregationError


def weighted_mean(arrays: Sequence[np.ndarray], weights: Sequence[int]) -> np.ndarray:
    """``float32( (sum_k float64(w_k) * float64(x_k)) / (sum_k float64(w_k)) )``, elementwise.

    The sums run in the given order (k = 0, 1, ...), in float64, one rounding per multiply and per
    add; the division is one float64 division; the cast to float32 rounds to nearest-even.
    Weights are positive integers (converted to float64 with round-to-nearest-even, exact below
    2**53). Arrays must be real floating point and all of one shape.
    """
    if len(arrays) == 0:
        raise AggregationError("weighted_mean of no arrays")
    if len(arrays) != len(weights):
        raise AggregationError(f"weighted_mean: {len(arrays)} arrays but {len(weights)} weights")
    first = np.asarray(arrays[0])
    shape = first.shape
    acc = np.zeros(shape, dtype=np.float64)
    term = np.empty(shape, dtype=np.float64)
    total = np.float64(0.0)
    for k, (x, w) in enumerate(zip(arrays, weights)):
        x = np.asarray(x)
        if x.shape != shape:
            raise AggregationError(f"weighted_mean: array {k} has shape {x.shape}, expected {shape}")
        if x.dtype.kind != "f":
            raise AggregationError(f"weighted_mean: array {k} has dtype {x.dtype}, not floating point")
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w <= 0:
            raise AggregationError(f"weighted_mean: weight {k} must be a positive integer, got {w!r}")
        w64 = np.float64(int(w))
        np.multiply(x, w64, out=term, dtype=np.float64)
        np.add(acc, term, out=acc)
        total = total + w64
    np.divide(acc, total, out=acc)
    return acc.astype(np.float32)
