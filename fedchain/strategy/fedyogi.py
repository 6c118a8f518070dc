"""FedYogi: the server applies Yogi to the pseudo-gradient.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2 (FedYogi lines), with ``Delta_t`` the
sample-weighted mean delta (:mod:`fedchain.strategy.serveropt`)::

    m_t     = beta1 * m_{t-1} + (1 - beta1) * Delta_t
    v_t     = v_{t-1} - (1 - beta2) * Delta_t^2 * sign(v_{t-1} - Delta_t^2)
    x_{t+1} = x_t + server_lr * m_t / (sqrt(v_t) + tau)

Yogi's v changes additively, so it grows or shrinks by at most (1 - beta2) Delta^2 per round
(Zaheer et al., NeurIPS 2018). Parameters and defaults as FedAdam: ``beta1`` 0.9, ``beta2`` 0.99,
``tau`` 1e-3, ``server_lr`` 1e-2. State: ``m.<tensor>``, ``v.<tensor>`` (float32); before the first
round m = 0 and v = tau^2. v stays >= 0 only approximately in floating point; the step uses
``sqrt(max(v, 0))``.

Each line is evaluated elementwise in float64 in the order written, using the float32-rounded m_t
and v_t in the last line.
"""

from __future__ import annotations

import numpy as np

from fedchain.strategy.fedadam import AdaptiveServerOptimizer


class FedYogi(AdaptiveServerOptimizer):
    name = "fedyogi"

    def update(self, delta: np.ndarray, prev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b2 = np.float64(self._params["beta2"])
        sq = np.multiply(delta, delta)
        change = np.multiply(np.multiply(sq, np.float64(1.0) - b2), np.sign(np.subtract(prev["v"], sq)))
        v = np.subtract(prev["v"], change)
        return {"m": self.first_moment(delta, prev["m"]), "v": v}

    def direction(self, moments: dict[str, np.ndarray]) -> np.ndarray:
        v = np.maximum(moments["v"], 0.0)
        return super().direction({"m": moments["m"], "v": v})
