"""The node's signed upload of its update (policy: :class:`fedchain.api.services.UploadPolicy`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from fedchain.api.deps import MAX_ID, UploadPolicyDep, err, hash_path
from fedchain.api.schemas import UploadOut
from fedchain.auth import SIGNATURE_HEADER

router = APIRouter(tags=["updates"])

_SIGNATURE_SCHEMA = {"pattern": r"^(0x)?[0-9a-fA-F]{130}$"}


@router.put(
    "/rounds/{round_id}/updates/{blob_hash}",
    response_model=UploadOut,
    status_code=201,
    summary="Upload a node's update for the open round (EIP-712 signed)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        200: {"model": UploadOut, "description": "the same node uploaded the same blob before (idempotent)"},
        400: err("blob hash not 0x + 64 hex digits (bad_hash), or the body does not hash to it (hash_mismatch)"),
        401: err("signature missing, not 65 bytes of hex, or unrecoverable (missing_signature, bad_signature)"),
        403: err("the signer is not eligible in this round, or signed another round/chain/contract/blob "
                 "(not_eligible)"),
        404: err("no such round (unknown_round)"),
        408: err("the body stalled or took too long (upload_timeout); nothing stored"),
        409: err("round not open or not current (round_not_open), past its deadline by chain time "
                 "(upload_closed), or another blob from this node (duplicate)"),
        413: err("declared or streamed body over the round config's limits.max_update_bytes (too_large)"),
        422: err("not this node's valid update for this round: not_own_update, malformed, wrong_names, "
                 "wrong_shape, wrong_dtype, non_finite, too_large; or an invalid path (invalid_request)"),
        502: err("the chain answered with an error (chain_error)"),
        503: err("the chain does not answer (rpc_unavailable), or the round's config or base model is missing or "
                 "unusable here (config_missing, bad_config, base_model_missing, bad_base_model, corrupted)"),
    },
)
async def upload_update(
    round_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    blob_hash: Annotated[str, hash_path()],
    request: Request,
    response: Response,
    policy: UploadPolicyDep,
    x_fedchain_signature: Annotated[
        str | None,
        Header(alias=SIGNATURE_HEADER, description="EIP-712 signature of Upload(round, blobHash), 65 bytes hex",
               json_schema_extra=_SIGNATURE_SCHEMA),
    ] = None,
) -> UploadOut:
    """The body is the node's update blob (``fedchain.codec.encode_update``: canonical safetensors
    naming chain id, contract, round and node); ``blob_hash`` is its commitment hash. The checks
    and their order are those of ``UploadPolicy`` (docs/api.md). 201 with the signed receipt, or
    200 when the same blob was uploaded before."""
    ticket = await run_in_threadpool(
        policy.admit,
        round_id=round_id,
        blob_hash=blob_hash,
        signature=x_fedchain_signature,
        content_length=request.headers.get("content-length"),
    )
    body = await policy.read_body(ticket, request.stream())
    result, created = await run_in_threadpool(policy.accept, ticket, body)
    response.status_code = 201 if created else 200
    return result
