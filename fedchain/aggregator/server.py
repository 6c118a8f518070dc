"""Run the REST API (real uvicorn) in a background thread beside the round loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from eth_account.signers.local import LocalAccount

from fedchain.aggregator.relay import RelayQueue
from fedchain.api import create_app
from fedchain.chain.client import ChainClient
from fedchain.devchain import port_open
from fedchain.errors import ConfigError
from fedchain.index import Indexer
from fedchain.settings import Settings
from fedchain.store import BlobStore


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread
    indexer: Indexer
    url: str
    app: Any = None
    #: Signed commitments nodes post for relaying; the round loop drains it.
    relay: RelayQueue | None = None

    def set_loop_status(self, state: str, detail: str | None) -> None:
        """The round loop's health, shown by ``/health``."""
        if self.app is not None:
            self.app.state.loop_status = {"state": state, "detail": detail}

    def request_sync(self) -> None:
        """Bring the index up to date soon: the sync thread runs now, off the round loop's path
        (the loop does not wait for it; without a sync thread, sync here)."""
        thread = getattr(self.app.state, "sync_thread", None) if self.app is not None else None
        if thread is not None and thread.is_alive():
            thread.poke()
        else:
            self.indexer.sync()

    def publish(self, round_id: int, status: str) -> None:
        """Push a round event to the nodes' ``GET /events`` streams (the round loop calls this as
        soon as its transaction is mined)."""
        if self.app is not None:
            self.app.state.events.publish(round_id, status)

    def stop(self) -> None:
        if self.app is not None:
            self.app.state.events.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_api(settings: Settings, chain: ChainClient, store: BlobStore, *, timeout: float = 20.0,
              signer: LocalAccount | None = None) -> ApiServer:
    """Start the API (real uvicorn) in a thread. ``signer`` (the aggregator's key) signs upload receipts."""
    if port_open(settings.api_host, settings.api_port):
        raise ConfigError(f"port {settings.api_port} is already in use", hint="pass another --port (FEDCHAIN_API_PORT)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    indexer = Indexer(chain, store, settings.resolved_db_url(), max_json_bytes=settings.max_json_bytes,
                      confirmations=settings.confirmations)
    relay = RelayQueue()
    app = create_app(settings, chain=chain, store=store, indexer=indexer)
    # Read by the routes at request time: the receipt key and the relay queue the round loop drains.
    app.state.signer = signer
    app.state.relay = relay
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fedchain-api", daemon=True)
    thread.start()
    end = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            raise ConfigError(f"the API did not start on {settings.api_host}:{settings.api_port}")
        time.sleep(0.05)
    return ApiServer(server=server, thread=thread, indexer=indexer,
                     url=f"http://{settings.api_host}:{settings.api_port}", app=app, relay=relay)

