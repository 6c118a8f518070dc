"""FedAdam: the server applies Adam to the pseudo-gradient.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2 (FedAdam lines), with ``Delta_t`` the
sample-weighted mean delta (:mod:`fedchain.strategy.serveropt`)::

    m_t     = beta1 * m_{t-1} + (1 - beta1) * Delta_t
    v_t     = beta2 * v_{t-1} + (1 - beta2) * Delta_t^2
    x_{t+1} = x_t + server_lr * m_t / (sqrt(v_t) + tau)

No bias correction (as in the paper). Parameters, with the paper's defaults: ``beta1`` 0.9,
``beta2`` 0.99 (both in [0, 1)), ``tau`` 1e-3 (the adaptivity, > 0; the paper tunes it over
1e-1..1e-5), ``server_lr`` 1e-2 (eta, > 0; tuned per task in the paper, over 10^-3..10^1). State:
``m.<tensor>`` and ``v.<tensor>`` (float32); before the first round m = 0 and v = tau^2.

Each line above is evaluated elementwise in float64 in the order written (products, then sums;
``sqrt`` correctly rounded; one division), using the float32-rounded m_t and v_t in the last line.
"""

from __future__ import annotations

import numpy as np

from fedchain.strategy.params import Param
from fedchain.strategy.serveropt import ServerOptimizer

ADAPTIVE_PARAMS = {
    "server_lr": Param("float", 1e-2, "server learning rate eta", lo=0.0, lo_open=True),
    "beta1": Param("float", 0.9, "first-moment decay", lo=0.0, hi=1.0, hi_open=True),
    "beta2": Param("float", 0.99, "second-moment decay", lo=0.0, hi=1.0, hi_open=True),
    "tau": Param("float", 1e-3, "adaptivity (added to sqrt(v))", lo=0.0, lo_open=True),
}


class AdaptiveServerOptimizer(ServerOptimizer):
    """FedAdam and FedYogi share m and the step; they differ in v."""

    MOMENTS = ("m", "v")
    PARAMS = ADAPTIVE_PARAMS

    def first_moment(self, delta: np.ndarray, m_prev: np.ndarray) -> np.ndarray:
        b1 = np.float64(self._params["beta1"])
        m = np.multiply(m_prev, b1)
        np.add(m, np.multiply(delta, np.float64(1.0) - b1), out=m)
        return m

    def direction(self, moments: dict[str, np.ndarray]) -> np.ndarray:
        denom = np.sqrt(moments["v"])
        np.add(denom, np.float64(self._params["tau"]), out=denom)
        return np.divide(moments["m"], denom)


class FedAdam(AdaptiveServerOptimizer):
    name = "fedadam"

    def update(self, delta: np.ndarray, prev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b2 = np.float64(self._params["beta2"])
        v = np.multiply(prev["v"], b2)
        np.add(v, np.multiply(np.multiply(delta, delta), np.float64(1.0) - b2), out=v)
        return {"m": self.first_moment(delta, prev["m"]), "v": v}
