"""Content-addressed blobs: models, configs and reports are public; update blobs are sealed until
their round closes (policy: :class:`fedchain.api.services.BlobAccess`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from fedchain.api.deps import BlobAccessDep, ServiceUnavailable, StoreDep, err, hash_path, with_reason
from fedchain.api.services import READ_EXPIRES_HEADER, ReadGrant, parse_hash
from fedchain.auth import READ_HEADER
from fedchain.errors import BlobNotFound, HashMismatch

router = APIRouter(prefix="/blobs", tags=["blobs"])

OCTET = "application/octet-stream"
CHUNK = 1 << 20

__all__ = ["router", "parse_hash"]


def _not_found(h: str) -> BlobNotFound:
    return with_reason(BlobNotFound(f"no blob {h} in this store"), "blob_not_found")  # type: ignore[return-value]


def _corrupted(h: str) -> ServiceUnavailable:
    return with_reason(ServiceUnavailable(f"stored blob {h} is corrupted"), "corrupted")  # type: ignore[return-value]


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {OCTET: {}}, "description": "the blob; its commitment hash is the ETag"},
    304: {"description": "If-None-Match matched"},
    400: err("hash not 0x + 64 hex digits (bad_hash)"),
    401: err("an update blob of a closed round, read without a valid permission (read_unsigned, "
             "bad_read_signature, read_expired, read_expiry_too_far)"),
    403: err("an update blob of an open round (sealed), or the permission's signer is neither an active node nor "
             "an auditor (not_a_member)"),
    404: err("unknown blob (blob_not_found)"),
    502: err("the chain answered with an error while checking a read (chain_error)"),
    503: err("the stored copy is corrupted (corrupted), or the round's state or config cannot be read "
             "(rpc_unavailable, config_missing, bad_config)"),
}

_READ_SIG = {"pattern": r"^(0x)?[0-9a-fA-F]{130}$"}
_READ_EXP = {"pattern": r"^[0-9]{1,20}$"}
ReadSignature = Annotated[
    str | None,
    Header(alias=READ_HEADER, json_schema_extra=_READ_SIG,
           description="EIP-712 signature of BlobRead(blobHash, expiresAt); needed for update blobs of closed rounds"),
]
ReadExpires = Annotated[
    str | None,
    Header(alias=READ_EXPIRES_HEADER, json_schema_extra=_READ_EXP,
           description="expiresAt of the signed BlobRead, unix seconds (server clock, at most 1 hour ahead)"),
]


def _headers(h: str, grant: ReadGrant) -> dict[str, str]:
    cache = ("public, max-age=31536000, immutable" if grant.access == "public"
             else "private, no-store")  # a member's read must not land in a shared cache
    return {"ETag": f'"{h}"', "Cache-Control": cache}


def _not_modified(request: Request, h: str) -> bool:
    inm = request.headers.get("if-none-match")
    return inm is not None and h in {t.strip().removeprefix("W/").strip('"').lower() for t in inm.split(",")}


def _grant(access: BlobAccessDep, h: str, sig: str | None, exp: str | None) -> ReadGrant:
    try:
        return access.check(h, read_signature=sig, read_expires=exp)
    except BlobNotFound as exc:
        raise _not_found(h) from exc


@router.get("/{blob_hash}", summary="A blob's bytes, by commitment hash", response_class=Response, responses=_RESPONSES)
def get_blob(
    blob_hash: Annotated[str, hash_path()],
    request: Request,
    store: StoreDep,
    access: BlobAccessDep,
    x_fedchain_read: ReadSignature = None,
    x_fedchain_read_expires: ReadExpires = None,
) -> Response:
    """Blobs are immutable: the body always hashes (``fedchain.hashing.commitment``) to the name,
    which is also the ETag. Check it on the client side; never trust the transport. The store
    verifies each blob once and then streams it."""
    h = parse_hash(blob_hash)
    grant = _grant(access, h, x_fedchain_read, x_fedchain_read_expires)
    if _not_modified(request, h):
        return Response(status_code=304, headers=_headers(h, grant))
    try:
        size, chunks = store.stream(h, chunk_size=CHUNK)
    except BlobNotFound as exc:
        raise _not_found(h) from exc
    except HashMismatch as exc:  # the stored copy is corrupted: never serve it
        raise _corrupted(h) from exc
    return StreamingResponse(chunks, media_type=OCTET, headers={**_headers(h, grant), "Content-Length": str(size)})


@router.head("/{blob_hash}", summary="Whether a blob exists, and its size", response_class=Response, responses=_RESPONSES)
def head_blob(
    blob_hash: Annotated[str, hash_path()],
    request: Request,
    store: StoreDep,
    access: BlobAccessDep,
    x_fedchain_read: ReadSignature = None,
    x_fedchain_read_expires: ReadExpires = None,
) -> Response:
    h = parse_hash(blob_hash)
    grant = _grant(access, h, x_fedchain_read, x_fedchain_read_expires)
    try:
        size = store.size(h)
    except BlobNotFound as exc:
        raise _not_found(h) from exc
    if _not_modified(request, h):
        return Response(status_code=304, headers=_headers(h, grant))
    return Response(status_code=200, headers={**_headers(h, grant), "Content-Length": str(size)}, media_type=OCTET)
