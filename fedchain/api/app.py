"""The aggregator's REST API: ``create_app`` wires settings, chain, store and index into FastAPI.

Reads are public and come from the index (rebuilt from chain events at will), except update blobs,
which are sealed until their round closes; the writes are a node's signed upload of its update and
its signed commitment for the relay. Policy lives in :mod:`fedchain.api.services`, not in routers.
Every :class:`FedchainError` becomes a JSON error body ``{"error", "reason", "detail", "hint"}``
with the error's ``http_status``; so do request validation errors (422, reason
``invalid_request``); anything unexpected is a 500 with the same shape and no internals. A client
that disconnects mid-request is logged as one line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from typing import Any

from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from fedchain import __version__
from fedchain.aggregator.relay import RelayQueue
from fedchain.api.errors import error_reason
from fedchain.api.events import EventHub, publish_chain_events
from fedchain.api.routers import blobs, commitments, events, health, nodes, rounds, secure, ui, updates
from fedchain.api.services import KindCache, RulesCache, SpecCache
from fedchain.chain.types import ChainReader
from fedchain.errors import FedchainError
from fedchain.index import Indexer
from fedchain.settings import Settings
from fedchain.store import BlobStore

log = logging.getLogger(__name__)

DESCRIPTION = """\
Auditable federated learning. The contracts are the record: they register nodes, schedule rounds,
hold each node's commitment to its update and the hash of every global model. This API serves
that history (indexed from contract events plus round reports) and the content-addressed blobs
behind the hashes, so anyone can re-verify a round. Nodes upload their updates here, signed with
EIP-712, and get the aggregator's signed receipt; gasless nodes post signed commitments for the
aggregator to relay. Update blobs are sealed until their round closes, then readable by members
with a signed read (see docs/api.md).

Errors are `{"error": class, "reason": code, "detail": message, "hint": fix-or-null}`.
"""

TAGS = [
    {"name": "health", "description": "Service status and the deployment served"},
    {"name": "rounds", "description": "Round history, from the chain"},
    {"name": "updates", "description": "Signed upload of a node's update, and relayed commitments (the writes)"},
    {"name": "nodes", "description": "Registered nodes"},
    {"name": "blobs", "description": "Content-addressed models, updates, configs and reports"},
]


class SyncThread(threading.Thread):
    """Calls ``indexer.sync()`` every ``interval`` seconds until stopped. Never dies on errors."""

    def __init__(self, indexer: Indexer, interval: float) -> None:
        super().__init__(name="fedchain-index-sync", daemon=True)
        self.indexer = indexer
        self.interval = max(0.05, float(interval))
        self.stopping = threading.Event()
        #: Set to sync now rather than at the end of the interval (:meth:`poke`).
        self.woken = threading.Event()

    def run(self) -> None:
        last_problem: str | None = None
        while not self.stopping.is_set():
            try:
                self.indexer.sync()
                if last_problem is not None:
                    log.warning("index sync recovered")
                last_problem = None
            except Exception as exc:  # noqa: BLE001 - logged, shown in /health, retried
                problem = f"{type(exc).__name__}: {exc}"
                if problem != last_problem:  # log each new problem once, not every poll
                    log.warning("index sync failed: %s", problem, exc_info=not isinstance(exc, FedchainError))
                last_problem = problem
            self.woken.wait(self.interval)
            self.woken.clear()

    def poke(self) -> None:
        """Sync now (the round loop after its transaction), without waiting for the sync."""
        self.woken.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.woken.set()
        self.join(timeout)


def _error_body(error: str, reason: str, detail: str, hint: str | None) -> dict[str, str | None]:
    return {"error": error, "reason": reason, "detail": detail, "hint": hint}


async def _fedchain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FedchainError)
    status = int(getattr(exc, "http_status", 400))
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)
    return JSONResponse(
        _error_body(type(exc).__name__, error_reason(exc), exc.message, exc.hint),
        status_code=status,
        headers=getattr(exc, "headers", None),
    )


def _location(loc: Any) -> str:
    return ".".join(str(p) for p in loc) if isinstance(loc, (list, tuple)) else str(loc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation errors, in the one error body shape (422 ``invalid_request``)."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for e in exc.errors()[:5]:
        parts.append(f"{_location(e.get('loc', ()))}: {str(e.get('msg', 'invalid'))[:200]}")
    detail = "; ".join(parts) or "invalid request"
    return JSONResponse(_error_body("RequestValidationError", "invalid_request", detail[:1000],
                                    "see /openapi.json for the parameters and body this operation takes"),
                        status_code=422)


async def _client_disconnect(request: Request, _exc: Exception) -> Response:
    log.info("%s %s: client disconnected mid-request", request.method, request.url.path)
    return Response(status_code=400)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        # FastAPI's answer to a body it cannot decode (bad UTF-8...): a validation error like the rest
        return JSONResponse(_error_body("RequestValidationError", "invalid_request", "body: not valid JSON",
                                        "send a JSON object as documented in /openapi.json"), status_code=422)
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        _error_body("HTTPException", reason, str(exc.detail), None),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        _error_body("InternalError", "internal", "internal server error", "this is a bug; the server log has details"),
        status_code=500,
    )


def _openapi_with_error_bodies(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with FastAPI's default 422 (``HTTPValidationError``) replaced by the
    ErrorOut body that :func:`_validation_error` actually sends."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                       tags=app.openapi_tags)
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            resp = op.get("responses", {}).get("422")
            if resp is None:
                continue
            content = resp.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                resp["content"] = {"application/json": {"schema": dict(error_ref)}}
                resp["description"] = "invalid path, query, header or body (invalid_request)"
    schemas = spec.get("components", {}).get("schemas", {})
    text = str(spec.get("paths"))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"/{name}'" not in text:
            schemas.pop(name)
    app.openapi_schema = spec
    return spec


def create_app(
    settings: Settings,
    *,
    chain: ChainReader,
    store: BlobStore,
    indexer: Indexer | None = None,
    background_sync: bool = True,
    signer: LocalAccount | None = None,
    relay: RelayQueue | None = None,
) -> FastAPI:
    """The API app. Without ``indexer`` one is made on ``settings.resolved_db_url()``. With
    ``background_sync`` a thread syncs the index every ``settings.poll_interval`` seconds while the
    app runs (its lifespan). ``signer`` is the aggregator's key, which signs upload receipts
    (without it receipts are null). ``relay`` is the queue that ``POST /rounds/{id}/commitments``
    fills and the round loop drains (default: a new one, at ``app.state.relay``). The round loop
    may report its state in ``app.state.loop_status`` (``{"state": "ok"|"degraded", "detail"}``),
    which ``/health`` shows."""
    if indexer is None:
        indexer = Indexer(chain, store, settings.resolved_db_url(), max_json_bytes=settings.max_json_bytes,
                          confirmations=settings.confirmations)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thread: SyncThread | None = None
        if background_sync:
            thread = SyncThread(app.state.indexer, settings.poll_interval)
            thread.start()
        app.state.sync_thread = thread
        try:
            yield
        finally:
            app.state.events.close()  # open streams would hold the server's graceful exit
            if thread is not None:
                thread.stop()

    app = FastAPI(
        title="fedchain aggregator API",
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.chain = chain
    app.state.store = store
    app.state.indexer = indexer
    app.state.spec_cache = SpecCache()
    app.state.rules_cache = RulesCache()
    app.state.kind_cache = KindCache()
    app.state.signer = signer
    app.state.relay = relay if relay is not None else RelayQueue()
    app.state.loop_status = {"state": "ok", "detail": None}
    # Round events for GET /events: from the round loop (ApiServer.publish) and from the index.
    app.state.events = EventHub()
    indexer.listeners.append(lambda evs: publish_chain_events(app.state.events, evs))
    app.state.sync_thread = None

    app.add_exception_handler(FedchainError, _fedchain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    app.include_router(health.router)
    app.include_router(rounds.router)
    app.include_router(updates.router)
    app.include_router(commitments.router)
    app.include_router(nodes.router)
    app.include_router(blobs.router)
    app.include_router(secure.router)
    app.include_router(events.router)
    app.include_router(ui.router)  # the dashboard at /ui (static files, not in the OpenAPI document)
    app.openapi = lambda: _openapi_with_error_bodies(app)  # type: ignore[method-assign]
    return app
