"""The one write: a node uploads its update for the open round, signed with EIP-712."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from fedchain.api.deps import MAX_ID, ChainDep, IndexerDep, ServiceUnavailable, SettingsDep, StoreDep, with_reason
from fedchain.api.routers.blobs import parse_hash
from fedchain.api.schemas import ErrorOut, UploadOut
from fedchain.auth import SIGNATURE_HEADER, recover_upload_signer
from fedchain.chain.types import ChainReader, RoundStatus
from fedchain.codec import decode_tensors, tensor_spec
from fedchain.errors import (
    AuthError,
    BlobNotFound,
    BlobTooLarge,
    Conflict,
    Forbidden,
    HashMismatch,
    NotFound,
)
from fedchain.hashing import commitment
from fedchain.index import Indexer, Upload
from fedchain.settings import Settings
from fedchain.store import BlobStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["updates"])


class SpecCache:
    """Tensor specs (name -> shape) of base models, by hash; a few recent ones are kept."""

    def __init__(self, size: int = 8) -> None:
        self._specs: OrderedDict[str, dict[str, tuple[int, ...]]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, store: BlobStore, model_hash: str, max_bytes: int) -> dict[str, tuple[int, ...]]:
        with self._lock:
            if model_hash in self._specs:
                self._specs.move_to_end(model_hash)
                return self._specs[model_hash]
        try:
            data = store.get(model_hash)
        except BlobNotFound as exc:
            raise with_reason(
                ServiceUnavailable(
                    f"the round's base model {model_hash} is not in this aggregator's store",
                    hint="the aggregator stores each base model before it opens the round; retry later",
                ),
                "base_model_missing",
            ) from exc
        spec = {k: tuple(v) for k, v in tensor_spec(decode_tensors(data, max_bytes=max_bytes)).items()}
        with self._lock:
            self._specs[model_hash] = spec
            while len(self._specs) > self.size:
                self._specs.popitem(last=False)
        return spec


def _parse_signature(value: str | None) -> str:
    """401 now for a missing or garbled header; recovery itself happens after the hash checks."""
    hint = f"sign Upload(round, blobHash) with EIP-712 (docs/api.md) and send it in {SIGNATURE_HEADER}"
    if value is None or not value.strip():
        raise with_reason(AuthError("the upload is not signed", hint=hint), "missing_signature")
    sig = value.strip()
    body = sig[2:] if sig[:2].lower() == "0x" else sig
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raw = b""
    if len(raw) != 65:
        raise with_reason(
            AuthError(f"{SIGNATURE_HEADER} is not a 65-byte hex signature", hint=hint), "bad_signature"
        )
    return sig


def _too_large(limit: int, size: int | None = None) -> BlobTooLarge:
    what = f"{size} bytes" if size is not None else "over the limit"
    return with_reason(  # type: ignore[return-value]
        BlobTooLarge(f"upload is {what}; this aggregator accepts at most {limit} bytes"), "too_large"
    )


async def _read_body(request: Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large(limit)
    return bytes(buf)


def _signer(*, round_id: int, blob_hash: str, signature: str, chain: ChainReader) -> str:
    """Who signed Upload(round, blobHash)? Must be an active node. Runs before the body is read:
    the signature covers the hash in the URL, so a non-node never makes us read or hash a body."""
    try:
        signer = recover_upload_signer(signature, chain.chain_id, chain.rounds_address, round_id, blob_hash)
    except AuthError as exc:
        raise with_reason(exc, "bad_signature") from None
    if not chain.is_active_node(signer):
        raise with_reason(
            Forbidden(
                f"the signature recovers to {signer}, which is not an active node "
                f"(or it was made for another round, chain or contract)",
                hint=f"sign Upload(round={round_id}, blobHash) for chain {chain.chain_id}, "
                f"contract {chain.rounds_address}, with a registered node's key",
            ),
            "not_active_node",
        )
    return signer


def _accept(
    *,
    round_id: int,
    blob_hash: str,
    body: bytes,
    signer: str,
    chain: ChainReader,
    store: BlobStore,
    indexer: Indexer,
    specs: SpecCache,
    settings: Settings,
) -> tuple[UploadOut, bool]:
    """Every check after the body is read, in the documented order. Returns (result, created)."""
    actual = commitment(body)
    if actual != blob_hash:
        raise with_reason(
            HashMismatch(
                f"the body hashes to {actual}, not {blob_hash}",
                hint="name the upload by fedchain.hashing.commitment(bytes) of exactly the bytes sent",
            ),
            "hash_mismatch",
        )
    try:
        info = chain.get_round(round_id)
    except NotFound as exc:
        raise with_reason(exc, "unknown_round") from None
    if info.status == RoundStatus.NONE:
        raise with_reason(NotFound(f"round {round_id} does not exist"), "unknown_round")
    if info.status != RoundStatus.OPEN:
        raise with_reason(
            Conflict(f"round {round_id} is {info.status.label}, not open", hint="upload to the current open round"),
            "round_not_open",
        )
    current = chain.current_round_id()
    if current != round_id:
        raise with_reason(
            Conflict(f"round {round_id} is not the current round ({current})"), "round_not_open"
        )
    result = UploadOut(round=round_id, node=signer, blob_hash=blob_hash, size=len(body))
    with indexer.session() as s:
        prev = s.get(Upload, (round_id, signer))
        if prev is not None:
            if prev.blob_hash == blob_hash:
                return result, False  # the same upload again: idempotent
            raise with_reason(
                Conflict(
                    f"{signer} already uploaded {prev.blob_hash} for round {round_id}",
                    hint="one update per node per round",
                ),
                "duplicate",
            )
    committed = chain.get_commitment(round_id, signer)
    if committed is not None and committed.update_hash.lower() != blob_hash:
        raise with_reason(
            Conflict(f"{signer} already committed {committed.update_hash} on-chain for round {round_id}"),
            "duplicate",
        )
    spec = specs.get(store, info.base_model_hash, settings.max_blob_bytes)
    decode_tensors(body, max_bytes=settings.max_blob_bytes, expected=spec)  # InvalidBlob -> 422
    store.put(body, expected_hash=blob_hash)
    with indexer.session() as s:
        s.add(
            Upload(
                round_id=round_id,
                node=signer,
                blob_hash=blob_hash,
                size=len(body),
                received_at=datetime.now(timezone.utc),
            )
        )
        try:
            s.commit()
        except IntegrityError:  # a concurrent upload by the same node won the race
            s.rollback()
            prev = s.get(Upload, (round_id, signer))
            if prev is not None and prev.blob_hash == blob_hash:
                return result, False
            raise with_reason(
                Conflict(f"{signer} already uploaded another blob for round {round_id}"), "duplicate"
            ) from None
    log.info("round %s: %s uploaded %s (%d bytes)", round_id, signer, blob_hash, len(body))
    return result, True


def _err(description: str) -> dict[str, object]:
    return {"model": ErrorOut, "description": description}


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
        200: {"model": UploadOut, "description": "the same blob was already uploaded (idempotent)"},
        400: _err("malformed blob hash, or the body does not hash to it (hash_mismatch)"),
        401: _err("missing or garbled signature"),
        403: _err("the signer is not an active node (or signed another round/chain/contract)"),
        404: _err("no such round"),
        409: _err("round not open / not current (round_not_open), or another blob already uploaded (duplicate)"),
        413: _err("body over max_blob_bytes"),
        422: _err("not a valid update for this round: reason malformed, non_finite, wrong_names, wrong_shape, wrong_dtype"),
    },
)
async def upload_update(
    round_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    blob_hash: str,
    request: Request,
    response: Response,
    settings: SettingsDep,
    chain: ChainDep,
    store: StoreDep,
    indexer: IndexerDep,
    x_fedchain_signature: Annotated[
        str | None, Header(alias=SIGNATURE_HEADER, description="EIP-712 signature of Upload(round, blobHash)")
    ] = None,
) -> UploadOut:
    """The body is the update's canonical safetensors bytes; ``blob_hash`` is their commitment hash.
    Checks run in this order: signature present (401), size (413), hash well-formed (400), signer
    is an active node (403; before any body byte is read), body hashes to it (400), round exists (404), round open and current
    (409), no other blob from this node for the round (409; the same blob again answers 200),
    content matches the base model (422). Then the blob is stored: 201."""
    signature = _parse_signature(x_fedchain_signature)
    limit = settings.max_blob_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit, int(declared))
    h = parse_hash(blob_hash)
    signer = await run_in_threadpool(_signer, round_id=round_id, blob_hash=h, signature=signature, chain=chain)
    body = await _read_body(request, limit)
    result, created = await run_in_threadpool(
        _accept,
        round_id=round_id,
        blob_hash=h,
        body=body,
        signer=signer,
        chain=chain,
        store=store,
        indexer=indexer,
        specs=request.app.state.spec_cache,
        settings=settings,
    )
    response.status_code = 201 if created else 200
    return result
