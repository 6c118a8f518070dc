"""The deterministic core of a secure round, shared by the aggregator and ``fedchain verify``.

Two steps, both pure functions of public data:

1. :func:`seal_decisions`, at the end of the commit phase: every committer's masked blob is
   checked on its own (it exists, matches the commitment, is well formed for the round: names,
   shapes, integer dtype, share bundle n x n, names its sender, the sender is in the selected
   set S). Those that fail are excluded on-chain by ``sealCommitments``, with the reason in the
   report. Masked values cannot be checked one by one, so this is all a per-update check can do.
2. :func:`compute_secure_round`, after the unmask phase: the survivors C' (committers minus the
   excluded, fixed on-chain) are unmasked from their masked blobs and the posted unmasking blobs
   (:func:`fedchain.secure.pipeline.unmask_round`), the sum's range is checked against the clip
   bound, and :func:`fedchain.aggregator.secure_merge.secure_model` gives the model. With DP noise
   the round's privacy cost is composed into the accountant state the config names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fedchain.aggregator.compute import (
    MISSING_UPLOAD, RoundComputation, RoundContext, UpdateDecision, _check_each, check_blob,
)
from fedchain.aggregator.config import RoundRules
from fedchain.aggregator.secure_merge import secure_model, secure_weight, weight_sum
from fedchain.chain.types import Commitment, SecureRoundView
from fedchain.codec import encode_json, encode_tensors, tensor_spec
from fedchain.errors import InvalidBlob
from fedchain.hashing import commitment
from fedchain.secure import SecAggError
from fedchain.secure.blob import decode_masked_update
from fedchain.secure.keys import RoundContext as SecureContext
from fedchain.secure.keys import is_valid_public_key

NOT_SELECTED = "not_selected"
UNMASK_FAILED = "unmask_failed"
SUM_OUT_OF_RANGE = "sum_out_of_range"

__all__ = ["SecureRoundInputs", "check_masked", "compute_secure_round", "privacy_after", "privacy_blob", "seal_decisions"]


@dataclass(frozen=True)
class SecureRoundInputs:
    """The public facts of a secure round that both steps need (from :class:`SecureRoundView`)."""

    selected: list[str]
    public_keys: Mapping[str, bytes]
    commitments: list[Commitment]
    excluded: list[str]
    posts: list[tuple[str, str]]  # (node, unmask_hash), in post order

    @classmethod
    def of(cls, view: SecureRoundView) -> "SecureRoundInputs":
        return cls(selected=list(view.selected), public_keys=dict(view.public_keys),
                   commitments=list(view.commitments), excluded=list(view.excluded),
                   posts=[(p.node, p.unmask_hash) for p in view.posts])

    def secure_set(self) -> list[str]:
        """S restricted to nodes with a valid X25519 key: the set every node masks over."""
        return [a for a in self.selected if is_valid_public_key(self.public_keys.get(a, b""))]

    def survivors(self) -> list[Commitment]:
        out = {e.lower() for e in self.excluded}
        return sorted((c for c in self.commitments if c.node.lower() not in out), key=lambda c: int(c.node, 16))


def _sctx(ctx: RoundContext) -> SecureContext:
    return SecureContext(chain_id=ctx.chain_id, contract=ctx.contract, round=ctx.round_id)


def check_masked(
    data: bytes | None,
    c: Commitment,
    *,
    rules: RoundRules,
    spec: Mapping[str, tuple[int, ...]],
    ctx: RoundContext,
    secure_set: Sequence[str],
    uploaded_hashes: Sequence[str] = (),
    verified: bool = False,
) -> str | None:
    """Why committer ``c``'s masked blob ``data`` cannot be in the sum ("code: explanation"), or None.
    ``verified``: as :func:`~fedchain.aggregator.compute.check_blob`'s."""
    if c.node.lower() not in {a.lower() for a in secure_set}:
        return f"{NOT_SELECTED}: {c.node} is not in the round's secure set (not eligible at opening, or no valid X25519 key)"
    reason = check_blob(data, c, rules.max_update_bytes, uploaded_hashes, verified=verified)
    if reason is not None or data is None:
        return reason
    try:
        decode_masked_update(data, config=rules.secure.fixed, identity=ctx.identity(c.node), expected=spec,
                             n_selected=len(secure_set), max_bytes=rules.max_update_bytes)
    except InvalidBlob as exc:
        return f"{exc.reason}: {exc.message}"
    return None


def seal_decisions(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    inputs: SecureRoundInputs,
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    uploads: Callable[[str], Sequence[str]] | None = None,
    fetch_verified: bool = False,
) -> list[UpdateDecision]:
    """Every commitment checked, in node order; the rejected ones are the seal's exclusions.
    ``fetch_verified``: as :func:`~fedchain.aggregator.compute.compute_round`'s."""
    rules = RoundRules.of(config)
    spec = tensor_spec(base)
    s = inputs.secure_set()

    def check(data: bytes | None, c: Commitment) -> tuple[Any, str | None]:
        reason = check_masked(data, c, rules=rules, spec=spec, ctx=ctx, secure_set=s,
                              uploaded_hashes=uploads(c.node) if uploads else (), verified=fetch_verified)
        return (True if reason is None else None), reason

    return [d for d, _ in _check_each(inputs.commitments, fetch, check)]


def privacy_after(rules: RoundRules, prev_state: Mapping[str, Any] | None, round_id: int, dim: int,
                  contributors: int) -> dict[str, Any] | None:
    """The accountant state after this round (None without DP noise): ``prev_state`` (or a new
    state at the config's δ) with this round's mechanism composed in."""
    from fedchain.privacy.accountant import RoundPrivacy, new_state, record_round

    noise = rules.secure.noise
    if noise is None:
        return None
    privacy = rules.privacy or {}
    state = prev_state if prev_state is not None else new_state(float(privacy.get("delta", 1e-5)))
    rp = RoundPrivacy.for_round(rules.secure.fixed, dim, noise, contributors=contributors,
                                colluders=int(privacy.get("colluders", 0)))
    return record_round(state, round_id, rp)


def compute_secure_round(
    config: Mapping[str, Any],
    base: Mapping[str, np.ndarray],
    inputs: SecureRoundInputs,
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    *,
    min_updates: int,
    exclusions: Mapping[str, str] | None = None,
    prev_privacy: Mapping[str, Any] | None = None,
    fetch_verified: bool = False,
) -> RoundComputation:
    """Unmask the survivors' sum and merge it. ``exclusions`` (node -> reason, from the seal's
    report) explains the excluded nodes' decisions. ``fetch_verified``: as
    :func:`~fedchain.aggregator.compute.compute_round`'s. No model (``details["error"]``) when the
    masks cannot be removed or the sum is out of range: the round then expires."""
    from fedchain.secure.pipeline import unmask_round

    rules = RoundRules.of(config)
    assert rules.secure is not None
    exclusions = {k.lower(): v for k, v in (exclusions or {}).items()}
    survivors = inputs.survivors()
    excluded = {e.lower() for e in inputs.excluded}
    max_samples = rules.max_samples
    total_w = weight_sum([c.num_samples for c in survivors], max_samples) if survivors else 0.0
    decisions = []
    for c in sorted(inputs.commitments, key=lambda c: c.node.lower()):
        if c.node.lower() in excluded:
            decisions.append(UpdateDecision(c.node, c.update_hash, c.num_samples, False,
                                            exclusions.get(c.node.lower(), "excluded: excluded by the seal")))
        else:
            w = secure_weight(c.num_samples, max_samples) / total_w if total_w else 0.0
            decisions.append(UpdateDecision(c.node, c.update_hash, c.num_samples, True, None, w))
    result = RoundComputation(decisions=decisions)
    if len(survivors) < max(1, min_updates):
        result.details = {"error": f"{len(survivors)} survivor(s), below quorum {min_updates}"}
        return result
    spec = tensor_spec(base)
    masked: dict[str, bytes] = {}
    for c in survivors:
        data = fetch(c.update_hash)
        if data is None or (not fetch_verified and commitment(data) != c.update_hash):
            result.details = {"error": f"{MISSING_UPLOAD}: the masked blob of survivor {c.node} is not available"}
            return result
        masked[c.node] = data
    unmask_blobs: dict[str, bytes] = {}
    bad_posts: list[dict[str, str]] = []
    for node, h in inputs.posts:
        data = fetch(h)
        if data is None or (not fetch_verified and commitment(data) != h):
            bad_posts.append({"holder": node, "reason": MISSING_UPLOAD})
            continue
        unmask_blobs[node] = data
    try:
        res = unmask_round(masked, unmask_blobs, secure=rules.secure, ctx=_sctx(ctx), selected=inputs.secure_set(),
                           committed=[c.node for c in survivors], expected=spec, max_bytes=rules.max_update_bytes)
    except (SecAggError, InvalidBlob) as exc:
        result.details = {"error": f"{UNMASK_FAILED}: {exc.reason}: {exc.message}", "unmask_missing_posts": bad_posts}
        return result
    secure_report = res.report()
    secure_report["rejected"] = bad_posts + secure_report["rejected"]
    if not res.range.ok:
        result.details = {"error": f"{SUM_OUT_OF_RANGE}: {res.range.message}", "secure": secure_report}
        return result
    model = secure_model(base, res.total, rules.secure.fixed, total_w)
    dim = sum(math.prod(v.shape) for v in base.values())
    state = privacy_after(rules, prev_privacy, ctx.round_id, dim, len(survivors))
    result.model = model
    result.model_bytes = encode_tensors(model)
    result.model_hash = commitment(result.model_bytes)
    result.details = {"secure": secure_report, "weight_sum": total_w}
    if state is not None:
        # The accountant state after the round: stored as a blob, named by the report and by the
        # next round's config (privacy.state_hash), so anyone recomputes ε round by round.
        result.details["privacy_state"] = state
    return result


def privacy_blob(state: Mapping[str, Any]) -> tuple[bytes, str]:
    data = encode_json(dict(state))
    return data, commitment(data)
