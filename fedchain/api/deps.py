"""Typed dependencies: what a route needs, taken from ``app.state`` (set by ``create_app``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from fedchain.api.errors import ServiceUnavailable, error_reason, with_reason
from fedchain.api.schemas import HASH_PATTERN, ErrorOut
from fedchain.api.services import BlobAccess, RelayPolicy, UploadPolicy
from fedchain.chain.types import ChainReader
from fedchain.index import Indexer
from fedchain.settings import Settings
from fedchain.store import BlobStore

__all__ = [
    "MAX_ID", "ServiceUnavailable", "error_reason", "with_reason", "err", "hash_path",
    "SettingsDep", "ChainDep", "StoreDep", "IndexerDep", "SessionDep",
    "UploadPolicyDep", "BlobAccessDep", "RelayPolicyDep",
]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_chain(request: Request) -> ChainReader:
    return request.app.state.chain


def get_store(request: Request) -> BlobStore:
    return request.app.state.store


def get_indexer(request: Request) -> Indexer:
    return request.app.state.indexer


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.indexer.session() as session:
        yield session


def get_upload_policy(request: Request) -> UploadPolicy:
    st = request.app.state
    return UploadPolicy(chain=st.chain, store=st.store, indexer=st.indexer, rules=st.rules_cache,
                        specs=st.spec_cache, signer=st.signer, read_timeout=st.settings.upload_read_timeout,
                        body_timeout=st.settings.upload_body_timeout, on_stored=lambda _round: st.relay.poke())


def get_blob_access(request: Request) -> BlobAccess:
    st = request.app.state
    return BlobAccess(chain=st.chain, store=st.store, indexer=st.indexer, rules=st.rules_cache, kinds=st.kind_cache)


def get_relay_policy(request: Request) -> RelayPolicy:
    st = request.app.state
    return RelayPolicy(chain=st.chain, indexer=st.indexer, relay=st.relay)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChainDep = Annotated[ChainReader, Depends(get_chain)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
IndexerDep = Annotated[Indexer, Depends(get_indexer)]
SessionDep = Annotated[Session, Depends(get_session)]
UploadPolicyDep = Annotated[UploadPolicy, Depends(get_upload_policy)]
BlobAccessDep = Annotated[BlobAccess, Depends(get_blob_access)]
RelayPolicyDep = Annotated[RelayPolicy, Depends(get_relay_policy)]

#: Largest id SQL integers hold; larger path ids are answered 422 rather than overflowing.
MAX_ID = 2**63 - 1


def hash_path() -> Any:
    """A blob-hash path parameter. The pattern is documented in the OpenAPI schema and enforced
    by the handler (``services.parse_hash``), which answers 400 ``bad_hash`` with the error body."""
    return Path(description="commitment hash: 0x + 64 hex digits", json_schema_extra={"pattern": HASH_PATTERN})


def err(description: str) -> dict[str, object]:
    """An error response in the OpenAPI document: the ErrorOut body."""
    return {"model": ErrorOut, "description": description}
