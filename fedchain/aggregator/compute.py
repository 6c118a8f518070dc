"""The deterministic core of a round, shared by the aggregator and by ``fedchain verify``.

Given the round config, the base model and the on-chain commitments, and a way to fetch blobs by
hash, it decides which updates are accepted (and why the others are not), merges the accepted ones
with the configured strategy, and serialises the result canonically. Anyone running this on the
same public inputs gets the same bytes, hence the same hash as the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fedchain.chain.types import Commitment
from fedchain.codec import decode_tensors, encode_tensors, tensor_spec
from fedchain.errors import InvalidBlob
from fedchain.hashing import commitment
from fedchain.strategy import ClientUpdate, get_strategy

#: Reason codes in round reports (the text after the colon explains).
MISSING_UPLOAD = "missing_upload"
HASH_MISMATCH = "hash_mismatch"


@dataclass(frozen=True)
class UpdateDecision:
    node: str
    update_hash: str
    num_samples: int
    accepted: bool
    reason: str | None
    weight: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "update_hash": self.update_hash,
            "num_samples": self.num_samples,
            "accepted": self.accepted,
            "reason": self.reason,
            "weight": self.weight,
        }


@dataclass
class RoundComputation:
    decisions: list[UpdateDecision]
    model: dict[str, np.ndarray] | None = None
    model_bytes: bytes | None = None
    model_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if d.accepted]

    @property
    def rejected(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if not d.accepted]


def check_update(
    data: bytes | None,
    c: Commitment,
    spec: Mapping[str, tuple[int, ...]],
    max_bytes: int,
    uploaded_hashes: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Validate one committed update. Returns (weights, None) or (None, "code: explanation")."""
    if data is None:
        others = [h for h in uploaded_hashes if h != c.update_hash]
        if others:
            return None, (
                f"{HASH_MISMATCH}: the node uploaded {others[0]} but committed {c.update_hash}"
            )
        return None, f"{MISSING_UPLOAD}: no blob with the committed hash {c.update_hash} was uploaded"
    actual = commitment(data)
    if actual != c.update_hash:
        return None, f"{HASH_MISMATCH}: blob hashes to {actual}, commitment is {c.update_hash}"
    try:
        return decode_tensors(data, max_bytes=max_bytes, expected=spec), None
    except InvalidBlob as exc:
        return None, f"{exc.reason}: {exc.message}"


def compute_round(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    *,
    max_bytes: int,
    min_updates: int,
    uploads: Callable[[str], Sequence[str]] | None = None,
) -> RoundComputation:
    """Decide, merge and serialise. ``fetch(hash)`` returns the blob's bytes or None if absent."""
    spec = tensor_spec(base)
    ordered = sorted(commitments, key=lambda c: c.node.lower())
    checked: list[tuple[Commitment, dict[str, np.ndarray] | None, str | None]] = []
    for c in ordered:
        weights, reason = check_update(fetch(c.update_hash), c, spec, max_bytes, uploads(c.node) if uploads else ())
        checked.append((c, weights, reason))
    accepted = [ClientUpdate(node=c.node, weights=w, num_samples=c.num_samples) for c, w, _ in checked if w is not None]
    strat = config.get("strategy") or {"name": "fedavg", "params": {}}
    strategy = get_strategy(strat["name"], strat.get("params") or {})
    weights = strategy.weights(accepted) if accepted else {}
    decisions = [
        UpdateDecision(
            node=c.node,
            update_hash=c.update_hash,
            num_samples=c.num_samples,
            accepted=w is not None,
            reason=reason,
            weight=float(weights.get(c.node, 0.0)) if w is not None else 0.0,
        )
        for c, w, reason in checked
    ]
    result = RoundComputation(decisions=decisions)
    if len(accepted) >= max(1, min_updates):
        model = strategy.aggregate(base, accepted)
        result.model = model
        result.model_bytes = encode_tensors(model)
        result.model_hash = commitment(result.model_bytes)
    return result
