"""FedAvgM: FedAvg with server momentum.

Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification", 2019 (arXiv:1909.06335), section 3 (server momentum): ``v <- beta v + Delta w``,
``w <- w - v`` with ``Delta w`` the (weighted) average client change; Reddi et al., "Adaptive
Federated Optimization", ICLR 2021, Algorithm 2 with the SGD-with-momentum server update, is the
same rule with a server learning rate. Here, with ``Delta_t`` the sample-weighted mean delta
(:mod:`fedchain.strategy.serveropt`)::

    m_t     = momentum * m_{t-1} + Delta_t
    x_{t+1} = x_t + server_lr * m_t

Parameters: ``server_lr`` (eta, default 1.0, > 0) and ``momentum`` (beta, default 0.9, 0 <= beta
< 1). momentum=0 with server_lr=1 is FedAvg on deltas. The effective step is eta / (1 - beta)
once the momentum has built up (Hsu et al.): lower server_lr to keep it near 1. State: ``m.<tensor>``
(float32), zero before the first round.
"""

from __future__ import annotations

import numpy as np

from fedchain.strategy.params import Param
from fedchain.strategy.serveropt import ServerOptimizer


class FedAvgM(ServerOptimizer):
    name = "fedavgm"
    MOMENTS = ("m",)
    PARAMS = {
        "server_lr": Param("float", 1.0, "server learning rate eta", lo=0.0, lo_open=True),
        "momentum": Param("float", 0.9, "server momentum beta", lo=0.0, hi=1.0, hi_open=True),
    }

    def update(self, delta: np.ndarray, prev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        m = np.multiply(prev["m"], np.float64(self._params["momentum"]))
        np.add(m, delta, out=m)
        return {"m": m}

    def direction(self, moments: dict[str, np.ndarray]) -> np.ndarray:
        return moments["m"]
