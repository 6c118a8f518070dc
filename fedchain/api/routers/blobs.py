"""Content-addressed blobs (models, updates, configs, reports), public read-only."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fedchain.api.deps import ServiceUnavailable, StoreDep, with_reason
from fedchain.api.schemas import ErrorOut
from fedchain.errors import BlobError, BlobNotFound, HashMismatch
from fedchain.hashing import is_hash, normalize_hash

router = APIRouter(prefix="/blobs", tags=["blobs"])

OCTET = "application/octet-stream"


def parse_hash(blob_hash: str) -> str:
    """Canonical hash, or 400 bad_hash."""
    if not is_hash(blob_hash):
        raise with_reason(
            BlobError(f"not a blob hash: {blob_hash[:80]!r}", hint="a blob hash is 0x followed by 64 hex digits"),
            "bad_hash",
        )
    return normalize_hash(blob_hash)


def _not_found(h: str) -> BlobNotFound:
    return with_reason(BlobNotFound(f"no blob {h} in this store"), "blob_not_found")  # type: ignore[return-value]


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {OCTET: {}}, "description": "the blob; its commitment hash is the ETag"},
    304: {"description": "If-None-Match matched"},
    400: {"model": ErrorOut, "description": "malformed hash"},
    404: {"model": ErrorOut, "description": "unknown blob"},
}


def _headers(h: str) -> dict[str, str]:
    return {"ETag": f'"{h}"', "Cache-Control": "public, max-age=31536000, immutable"}


def _not_modified(request: Request, h: str) -> bool:
    inm = request.headers.get("if-none-match")
    return inm is not None and h in {t.strip().removeprefix("W/").strip('"').lower() for t in inm.split(",")}


@router.get("/{blob_hash}", summary="A blob's bytes, by commitment hash", response_class=Response, responses=_RESPONSES)
def get_blob(blob_hash: str, request: Request, store: StoreDep) -> Response:
    """Blobs are immutable: the body always hashes (``fedchain.hashing.commitment``) to the name,
    which is also the ETag. Check it on the client side; never trust the transport."""
    h = parse_hash(blob_hash)
    if _not_modified(request, h):
        if not store.has(h):
            raise _not_found(h)
        return Response(status_code=304, headers=_headers(h))
    try:
        data = store.get(h)
    except BlobNotFound as exc:
        raise _not_found(h) from exc
    except HashMismatch as exc:  # the stored copy is corrupted: never serve it
        raise with_reason(ServiceUnavailable(f"stored blob {h} is corrupted"), "corrupted") from exc
    return Response(content=data, media_type=OCTET, headers=_headers(h))


@router.head("/{blob_hash}", summary="Whether a blob exists, and its size", response_class=Response, responses=_RESPONSES)
def head_blob(blob_hash: str, request: Request, store: StoreDep) -> Response:
    h = parse_hash(blob_hash)
    try:
        size = store.size(h)
    except BlobNotFound as exc:
        raise _not_found(h) from exc
    if _not_modified(request, h):
        return Response(status_code=304, headers=_headers(h))
    return Response(status_code=200, headers={**_headers(h), "Content-Length": str(size)}, media_type=OCTET)
