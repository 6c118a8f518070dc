"""L2 clipping of an update, the first step of the secure-mode node pipeline.

The whole update (all tensors together, in name order) is scaled by min(1, C / ||x||_2), computed
in float64, so that the result has L2 norm <= C. A tiny safety factor (1 - 2^-40) keeps float
rounding from landing a hair above C. The result is float64 (the fixed-point codec's input).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from fedchain.errors import InvalidBlob

__all__ = ["clip_l2", "l2_norm"]

_SAFETY = 1.0 - 2.0**-40


def l2_norm(tensors: Mapping[str, Any]) -> float:
    """L2 norm of all tensors together (float64; names in sorted order)."""
    total = 0.0
    for name in sorted(tensors):
        x = np.asarray(tensors[name], dtype=np.float64).reshape(-1)
        total += float(np.sum(x * x))
    return math.sqrt(total)


def clip_l2(tensors: Mapping[str, Any], clip: float) -> tuple[dict[str, np.ndarray], float]:
    """``(clipped, norm)``: float64 copies of ``tensors`` scaled to L2 norm <= ``clip``, and the
    norm before clipping (a node may log it; it is not published). Raises InvalidBlob
    ``non_finite`` for NaN/inf, ValueError for a non-positive clip."""
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a positive finite number, got {clip!r}")
    arrays = {name: np.array(tensors[name], dtype=np.float64) for name in sorted(tensors)}
    for name, arr in arrays.items():
        if not np.isfinite(arr).all():
            raise InvalidBlob(f"tensor {name!r} has non-finite values; cannot clip", reason="non_finite")
    norm = l2_norm(arrays)
    if norm > clip:
        factor = clip / norm * _SAFETY
        arrays = {name: arr * factor for name, arr in arrays.items()}
    return arrays, norm
