"""Inflated sample count: declare the round's cap instead of the node's real number of samples.

FedAvg weights each update by its declared sample count (McMahan et al. 2017, Algorithm 1), which
nothing but the node's word backs; a node that claims more gets more weight (the "self-reported
data size" problem, e.g. Fung, Yoon, Beschastnikh, "The Limitations of Federated Learning in
Sybil Settings", RAID 2020, section 2). fedchain's contract caps the claim at the round's
``max_samples`` (`TooManySamples` above it), so the strongest claim is the cap itself, which this
attack declares. Its update is its honest one (combine with another attack for more damage).
"""

from __future__ import annotations

from fedchain.attacks.base import Attack, Param


class InflatedSamples(Attack):
    name = "inflate"
    paper = "Fung et al., RAID 2020 (self-reported sample counts)"
    forges_update = False
    PARAMS = {"fraction": Param(1.0, float, low=0.0, high=1.0,
                                help="claim this share of the cap (1: the cap itself)")}

    def claim(self, num_samples: int, max_samples: int) -> int:
        want = max(int(num_samples), int(self["fraction"] * int(max_samples)))
        return min(want, int(max_samples))
