"""Min-max (Shejwalkar & Houmansadr, NDSS 2021, section IV-B, Algorithm 1 with the min-max oracle).

The hostile vector ``mu + gamma p`` is as far along p as it can go while its largest distance to
any honest delta stays within the largest distance between two honest deltas:
``max_i ||m - g_i|| <= max_{i,j} ||g_i - g_j||``. See :mod:`fedchain.attacks.agr_agnostic`.
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.agr_agnostic import AgrAgnostic, pairwise_sq_dists


class MinMax(AgrAgnostic):
    name = "min_max"
    paper = "Shejwalkar, Houmansadr, NDSS 2021 (AGR-agnostic min-max)"

    def accepts(self, candidate: np.ndarray, honest: np.ndarray, d_hh: np.ndarray) -> bool:
        return float(pairwise_sq_dists(candidate[None, :], honest).max()) <= float(d_hh.max())
