"""FedAvg: the sample-weighted average of the clients' models.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017 (arXiv:1602.05629), Algorithm 1: the server sets
``w_{t+1} = sum_k (n_k / n) w^k_{t+1}`` over the participating clients k, with n_k the client's
number of training examples and n their sum.

Here the clients' models are the accepted updates (full weights, not deltas) and n_k is the sample
count each node committed on-chain. For bit-exact recomputation the updates are ordered by node
address (lowercase hex string, ascending) and merged with :func:`weighted_mean`, which computes
``(sum_k n_k * w^k) / n`` in float64 (see docs/protocol.md, "Aggregation rule (FedAvg)"). The base
model only fixes the expected tensor names and shapes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fedchain.errors import ConfigError
from fedchain.strategy.aggregate import weighted_mean
from fedchain.strategy.base import ClientUpdate, Strategy, check_same_spec, ordered_updates


class FedAvg(Strategy):
    name = "fedavg"

    def __init__(self, **params: Any) -> None:
        if params:
            raise ConfigError(f"strategy fedavg takes no parameters, got {sorted(params)}")
        super().__init__()

    def aggregate(self, base: Mapping[str, np.ndarray], updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        ordered = ordered_updates(updates)
        check_same_spec(base, ordered)
        samples = [int(u.num_samples) for u in ordered]
        return {name: weighted_mean([u.weights[name] for u in ordered], samples) for name in sorted(base)}

    def weights(self, updates: Sequence[ClientUpdate]) -> dict[str, float]:
        ordered = ordered_updates(updates)
        total = sum(int(u.num_samples) for u in ordered)
        return {u.node: int(u.num_samples) / total for u in ordered}
