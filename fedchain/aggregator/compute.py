"""The deterministic core of a round, shared by the aggregator and by ``fedchain verify``.

Two steps, both pure functions of their inputs:

1. :func:`decide` checks each on-chain commitment against the blob it names (if any), in node
   order, and says why an update is rejected: ``missing_upload``, ``hash_mismatch``,
   ``duplicate_update`` (a hash another node committed first), ``not_own_update`` (the blob names
   another sender, round, chain or contract: a copied commitment), or a codec reason
   (``malformed``, ``wrong_shape``, ``non_finite``...).
2. :func:`merge` combines the accepted updates with the configured strategy and serialises the
   model canonically.

The aggregator runs both on what it received. ``verify`` runs :func:`merge` on the updates the
round report says were accepted (every one of which it re-checks with :func:`check_update`), so
its verdict depends only on the chain, the committed config and the blobs the report references,
never on what a store happens to hold later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fedchain.aggregator.config import RoundRules
from fedchain.chain.types import Commitment
from fedchain.codec import UpdateIdentity, decode_update, encode_tensors, tensor_spec
from fedchain.errors import InvalidBlob
from fedchain.hashing import commitment
from fedchain.strategy import AggregationError, ClientUpdate, get_strategy

#: Reason codes in round reports (the text after the colon explains).
MISSING_UPLOAD = "missing_upload"
HASH_MISMATCH = "hash_mismatch"
DUPLICATE_UPDATE = "duplicate_update"
NOT_OWN_UPDATE = "not_own_update"


@dataclass(frozen=True)
class UpdateDecision:
    node: str
    update_hash: str
    num_samples: int
    accepted: bool
    reason: str | None
    weight: float = 0.0

    @property
    def code(self) -> str | None:
        """The reason code alone (``missing_upload``...), without its explanation."""
        return None if self.reason is None else self.reason.split(":", 1)[0]

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
    #: A stateful strategy's state after the round, canonical bytes and hash (the next round's input).
    state_bytes: bytes | None = None
    state_hash: str | None = None
    #: The strategy's own deterministic facts (Krum's selection, clipping norms...), for the report.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if d.accepted]

    @property
    def rejected(self) -> list[UpdateDecision]:
        return [d for d in self.decisions if not d.accepted]


@dataclass(frozen=True)
class RoundContext:
    """What identifies a round's updates: the blob of node N must name (chain, contract, round, N)."""

    chain_id: int
    contract: str
    round_id: int

    def identity(self, node: str) -> UpdateIdentity:
        return UpdateIdentity(chain_id=self.chain_id, contract=self.contract, round=self.round_id, node=node)


def check_update(
    data: bytes | None,
    c: Commitment,
    spec: Mapping[str, tuple[int, ...]],
    ctx: RoundContext,
    max_bytes: int,
    uploaded_hashes: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Validate one committed update. Returns (weights, None) or (None, "code: explanation")."""
    if data is None:
        others = [h for h in uploaded_hashes if h != c.update_hash]
        if others:
            return None, f"{HASH_MISMATCH}: the node uploaded {others[0]} but committed {c.update_hash}"
        return None, f"{MISSING_UPLOAD}: no blob with the committed hash {c.update_hash} was uploaded"
    if len(data) > max_bytes:
        return None, f"too_large: blob is {len(data)} bytes, the round's limit is {max_bytes}"
    actual = commitment(data)
    if actual != c.update_hash:
        return None, f"{HASH_MISMATCH}: blob hashes to {actual}, commitment is {c.update_hash}"
    try:
        return decode_update(data, identity=ctx.identity(c.node), max_bytes=max_bytes, expected=spec), None
    except InvalidBlob as exc:
        return None, f"{exc.reason}: {exc.message}"


def decide(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    uploads: Callable[[str], Sequence[str]] | None = None,
) -> list[tuple[UpdateDecision, dict[str, np.ndarray] | None]]:
    """Check every commitment (``commitments`` in commit order, as the chain lists them).

    Each is checked on its own: the blob names its sender, so of several nodes that commit the
    same hash only the one it names can pass, whoever committed first (a copier that front-runs
    the owner gets ``not_own_update``, the owner is accepted). When the blob is absent, the later
    committers of a shared hash are ``duplicate_update`` and the first ``missing_upload``."""
    rules = RoundRules.of(config)
    spec = tensor_spec(base)
    first_by_hash: dict[str, str] = {}
    for c in commitments:
        first_by_hash.setdefault(c.update_hash, c.node)
    blobs: dict[str, bytes | None] = {}
    out: list[tuple[UpdateDecision, dict[str, np.ndarray] | None]] = []
    for c in sorted(commitments, key=lambda c: c.node.lower()):
        if c.update_hash not in blobs:
            blobs[c.update_hash] = fetch(c.update_hash)
        weights, reason = check_update(blobs[c.update_hash], c, spec, ctx, rules.max_update_bytes,
                                       uploads(c.node) if uploads else ())
        first = first_by_hash[c.update_hash]
        if weights is None and first != c.node and (reason or "").startswith(MISSING_UPLOAD):
            reason = f"{DUPLICATE_UPDATE}: {c.update_hash} was committed first by {first}"
        out.append((UpdateDecision(c.node, c.update_hash, c.num_samples, weights is not None, reason), weights))
    return out


def merge(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    checked: Sequence[tuple[UpdateDecision, dict[str, np.ndarray] | None]],
    *,
    min_updates: int,
    state: Mapping[str, np.ndarray] | None = None,
) -> RoundComputation:
    """Merge the accepted updates with the config's strategy (below quorum: no model).
    ``state`` is a stateful strategy's input: the blob the config's ``strategy.state_hash`` names."""
    rules = RoundRules.of(config)
    accepted = [ClientUpdate(node=d.node, weights=w, num_samples=min(d.num_samples, rules.max_samples))
                for d, w in checked if d.accepted and w is not None]
    strategy = get_strategy(rules.strategy["name"], rules.strategy.get("params") or {})
    step = None
    failure: str | None = None
    if len(accepted) >= max(1, min_updates):
        try:
            step = strategy.step(base, accepted, state)
        except AggregationError as exc:  # e.g. Krum or Bulyan with too few updates for their f
            failure = f"{rules.strategy['name']}: {exc.message}"
    weights = step.weights if step is not None else (strategy.weights(accepted) if accepted else {})
    decisions = [
        UpdateDecision(d.node, d.update_hash, d.num_samples, d.accepted, d.reason,
                       float(weights.get(d.node, 0.0)) if d.accepted else 0.0)
        for d, _ in checked
    ]
    result = RoundComputation(decisions=decisions)
    if failure is not None:
        result.details = {"error": failure}  # no model: the round cannot finalize and expires
    if step is not None:
        result.model = step.model
        result.model_bytes = encode_tensors(step.model)
        result.model_hash = commitment(result.model_bytes)
        result.details = dict(step.details)
        if step.state is not None:
            result.state_bytes = encode_tensors(step.state)
            result.state_hash = commitment(result.state_bytes)
    return result


def compute_round(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    commitments: Sequence[Commitment],
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    min_updates: int,
    uploads: Callable[[str], Sequence[str]] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
) -> RoundComputation:
    """Decide, merge and serialise. ``fetch(hash)`` returns the blob's bytes or None if absent."""
    return merge(config, base, decide(config, base, commitments, fetch, ctx, uploads=uploads),
                 min_updates=min_updates, state=state)
