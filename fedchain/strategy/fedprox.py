"""FedProx: FedAvg's server step; the proximal term is added by each node during local training.

Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated Optimization in Heterogeneous Networks",
MLSys 2020 (arXiv:1812.06127), Algorithm 2: each selected device k approximately minimises
``h_k(w; w^t) = F_k(w) + (mu/2) ||w - w^t||^2`` starting from the global model w^t, and the server
averages the returned models, ``w^{t+1} = sum_k (n_k / n) w_k^{t+1}`` (as FedAvg does here: the
sample-weighted mean of :func:`~fedchain.strategy.aggregate.weighted_mean`, bit-exact).

Parameter ``mu`` (default 0.01, >= 0; the paper tunes it over {0.001, 0.01, 0.1, 1}). It is written
into the round config's ``strategy.params``, hence committed on-chain; the node reads it from there
and passes it to ``Task.train(prox_mu=mu)``, which adds the term to its loss. mu=0 is FedAvg.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fedchain.strategy.base import ClientUpdate, Strategy
from fedchain.strategy.fedavg import FedAvg
from fedchain.strategy.params import Param, check_params


class FedProx(Strategy):
    name = "fedprox"
    PARAMS = {"mu": Param("float", 0.01, "proximal weight (applied by the nodes)", lo=0.0)}

    def __init__(self, **params: Any) -> None:
        super().__init__(**check_params(self.name, params, self.PARAMS))

    @classmethod
    def param_names(cls) -> list[str]:
        return sorted(cls.PARAMS)

    def aggregate(self, base: Mapping[str, np.ndarray], updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        return FedAvg().aggregate(base, updates)

    def weights(self, updates: Sequence[ClientUpdate]) -> dict[str, float]:
        return FedAvg().weights(updates)
