"""Min-sum (Shejwalkar & Houmansadr, NDSS 2021, section IV-B, Algorithm 1 with the min-sum oracle).

The hostile vector ``mu + gamma p`` is as far along p as it can go while the sum of its squared
distances to the honest deltas stays within the largest such sum of an honest delta:
``sum_i ||m - g_i||^2 <= max_i sum_j ||g_i - g_j||^2``. See :mod:`fedchain.attacks.agr_agnostic`.
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.agr_agnostic import AgrAgnostic, pairwise_sq_dists


class MinSum(AgrAgnostic):
    name = "min_sum"
    paper = "Shejwalkar, Houmansadr, NDSS 2021 (AGR-agnostic min-sum)"

    def accepts(self, candidate: np.ndarray, honest: np.ndarray, d_hh: np.ndarray) -> bool:
        return float(pairwise_sq_dists(candidate[None, :], honest).sum()) <= float(d_hh.sum(axis=1).max())
