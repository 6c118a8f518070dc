"""Scaling (boosting): send the honest delta multiplied by ``k``.

Bhagoji, Chakraborty, Mittal, Calo, "Analyzing Federated Learning through an Adversarial Lens",
ICML 2019 (arXiv:1811.12470), "explicit boosting", and the model-replacement scaling of
Bagdasaryan, Veit, Hua, Estrin, Shmatikov, "How To Backdoor Federated Learning", AISTATS 2020
(arXiv:1807.00459), eq. 3: the attacker scales its update by a factor (there n/eta) so that it
survives the averaging. Here the delta itself is honest, only its size is not (``k`` = 10 by
default: with 10 nodes, one boosted node outweighs all the others under FedAvg).
"""

from __future__ import annotations

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param


class Scaling(Attack):
    name = "scaling"
    paper = "Bhagoji et al., ICML 2019 (explicit boosting); Bagdasaryan et al., AISTATS 2020"
    PARAMS = {"k": Param(10.0, float, help="the sent delta is k x the honest delta")}

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        return self["k"] * np.asarray(own, dtype=np.float64)
