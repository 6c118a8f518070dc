"""Secure mode: survivors' unmasking blobs, and the privacy accountant
(policy: :class:`fedchain.api.services.UnmaskUploadPolicy`, :func:`fedchain.api.services.privacy_state`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from fedchain.api.deps import MAX_ID, ChainDep, StoreDep, err, hash_path
from fedchain.api.schemas import PrivacyOut, UnmaskUploadOut
from fedchain.api.services import UnmaskUploadPolicy, privacy_state, too_large
from fedchain.auth import SIGNATURE_HEADER

router = APIRouter(tags=["secure"])

#: The header carrying a survivor's compact ``Unmask`` signature for the relay.
RELAY_HEADER = "X-Fedchain-Relay-Signature"

#: Largest unmasking body read at all; the round config's limit is checked after.
MAX_UNMASK_BODY = 64 * 1024 * 1024


def get_unmask_policy(request: Request) -> UnmaskUploadPolicy:
    st = request.app.state
    return UnmaskUploadPolicy(chain=st.chain, store=st.store, rules=st.rules_cache, relay=st.relay)


@router.put(
    "/rounds/{round_id}/unmask/{blob_hash}",
    response_model=UnmaskUploadOut,
    status_code=201,
    summary="Upload a survivor's unmasking blob for a sealed secure round (EIP-712 signed)",
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}},
    responses={
        200: {"model": UnmaskUploadOut, "description": "the same blob was uploaded before (idempotent)"},
        400: err("bad blob hash (bad_hash), or the body does not hash to it (hash_mismatch)"),
        401: err("signature missing or malformed (missing_signature, bad_signature)"),
        403: err("the signer is not a survivor of the round's seal (not_survivor)"),
        503: err("the chain does not answer (rpc_unavailable), or the relay queue is full (relay_full)"),
        404: err("no such round (unknown_round)"),
        409: err("round not open (round_not_open), transparent (not_secure), not sealed yet (not_sealed), "
                 "past its unmask deadline (unmask_closed), or past the relay cut-off (relay_closed)"),
        413: err("body over the round's limits.max_update_bytes (too_large)"),
        422: err("not the signer's unmasking blob for the on-chain set: not_own_update, wrong_committed_set, "
                 "wrong_reveals, malformed"),
    },
)
async def upload_unmask(
    round_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    blob_hash: Annotated[str, hash_path()],
    request: Request,
    response: Response,
    policy: Annotated[UnmaskUploadPolicy, Depends(get_unmask_policy)],
    x_fedchain_signature: Annotated[
        str | None,
        Header(alias=SIGNATURE_HEADER, description="EIP-712 signature of Upload(round, blobHash), 65 bytes hex",
               json_schema_extra={"pattern": r"^(0x)?[0-9a-fA-F]{130}$"}),
    ] = None,
    x_fedchain_relay_signature: Annotated[
        str | None,
        Header(alias=RELAY_HEADER, description="optional: EIP-712 Unmask(roundId, unmaskHash) in EIP-2098 compact "
                                               "form, to have the aggregator post the hash on-chain",
               json_schema_extra={"pattern": r"^0x[0-9a-fA-F]{128}$"}),
    ] = None,
) -> UnmaskUploadOut:
    """The body is the canonical JSON of ``fedchain.secure.unmasking.build_unmask_blob``. With
    ``X-Fedchain-Relay-Signature`` the aggregator also relays the hash (``relay: "queued"``); the
    node watches the chain and posts directly if it is not there by the relay cut-off."""
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > MAX_UNMASK_BODY:
            raise too_large(MAX_UNMASK_BODY)
    out, created = await run_in_threadpool(policy.accept, round_id=round_id, blob_hash=blob_hash,
                                           signature=x_fedchain_signature, body=bytes(buf),
                                           relay_signature=x_fedchain_relay_signature)
    response.status_code = 201 if created else 200
    return UnmaskUploadOut(**out)


def _privacy(out: dict) -> PrivacyOut:
    state = out["state"]
    return PrivacyOut(round=out["round"], mode=out["mode"], state=state,
                      epsilon=state.get("epsilon") if state else None, delta=state.get("delta") if state else None)


@router.get("/privacy", response_model=PrivacyOut, summary="The privacy accountant after the last finalized round",
            responses={503: err("the report is not readable here (report_missing), or the chain does not answer")})
def get_privacy(chain: ChainDep, store: StoreDep) -> PrivacyOut:
    return _privacy(privacy_state(chain, store))


@router.get("/rounds/{round_id}/privacy", response_model=PrivacyOut,
            summary="The privacy accountant after one round",
            responses={404: err("no such round (unknown_round), or it has no report (no_report)"),
                       503: err("the report is not readable here (report_missing)")})
def get_round_privacy(round_id: Annotated[int, Path(ge=1, le=MAX_ID)], chain: ChainDep, store: StoreDep) -> PrivacyOut:
    return _privacy(privacy_state(chain, store, round_id))
