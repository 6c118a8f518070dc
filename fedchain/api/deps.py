"""Typed dependencies: what a route needs, taken from ``app.state`` (set by ``create_app``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fedchain.chain.types import ChainReader
from fedchain.errors import FedchainError
from fedchain.index import Indexer
from fedchain.settings import Settings
from fedchain.store import BlobStore


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChainDep = Annotated[ChainReader, Depends(get_chain)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
IndexerDep = Annotated[Indexer, Depends(get_indexer)]
SessionDep = Annotated[Session, Depends(get_session)]

#: Largest id SQL integers hold; larger path ids are answered 422 rather than overflowing.
MAX_ID = 2**63 - 1


class ServiceUnavailable(FedchainError):
    """The aggregator cannot serve this right now (a base model missing from its store, a corrupted
    blob): its problem, not the client's."""

    http_status = 503


def with_reason(exc: FedchainError, reason: str) -> FedchainError:
    """Attach a machine-readable reason code (the ``reason`` field of the error body)."""
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def error_reason(exc: FedchainError) -> str:
    """The error's reason code: its own ``reason``, a revert's name, else its class in snake_case."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    name = getattr(exc, "name", None)  # ContractRevert
    if isinstance(name, str) and name:
        return name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
