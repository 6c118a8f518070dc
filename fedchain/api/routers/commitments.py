"""Relayed commitments for gasless nodes (policy: :class:`fedchain.api.services.RelayPolicy`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from fedchain.api.deps import MAX_ID, RelayPolicyDep, err
from fedchain.api.schemas import CommitmentIn, CommitmentOut

router = APIRouter(tags=["updates"])


@router.post(
    "/rounds/{round_id}/commitments",
    response_model=CommitmentOut,
    status_code=202,
    summary="Queue a node's signed commitment for the aggregator to relay (submitBatch)",
    responses={
        401: err("the signature does not recover (bad_signature)"),
        403: err("the signer is not eligible in this round (not_eligible)"),
        404: err("no such round (unknown_round)"),
        409: err("round not open or not current (round_not_open), past deadline - relay cutoff by chain time "
                 "(relay_closed: commit directly), already committed (already_committed), or this node did not "
                 "upload this blob (not_uploaded)"),
        422: err("invalid body or path (invalid_request), or num_samples over the round's max_samples "
                 "(too_many_samples)"),
        502: err("the chain answered with an error (chain_error)"),
        503: err("the chain does not answer (rpc_unavailable), or the queue is full (relay_full)"),
    },
)
def post_commitment(
    round_id: Annotated[int, Path(ge=0, le=MAX_ID)], body: CommitmentIn, policy: RelayPolicyDep
) -> CommitmentOut:
    """``signature`` is the node's EIP-712 ``Commitment(roundId, updateHash, numSamples)`` in
    EIP-2098 compact form (``fedchain.auth.sign_commitment``). A 202 means queued, not committed:
    the node watches the chain for its ``UpdateSubmitted`` and commits directly with
    ``submitUpdate`` if it has not appeared by ``relay_closes_at``."""
    return policy.submit(round_id, body)
