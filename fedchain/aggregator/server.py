"""Run the REST API (real uvicorn) in a background thread beside the round loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
import uvicorn

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

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_api(settings: Settings, chain: ChainClient, store: BlobStore, *, timeout: float = 20.0) -> ApiServer:
    if port_open(settings.api_host, settings.api_port):
        raise ConfigError(f"port {settings.api_port} is already in use", hint="pass another --port (FEDCHAIN_API_PORT)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    indexer = Indexer(chain, store, settings.resolved_db_url())
    app = create_app(settings, chain=chain, store=store, indexer=indexer)
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fedchain-api", daemon=True)
    thread.start()
    end = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            raise ConfigError(f"the API did not start on {settings.api_host}:{settings.api_port}")
        time.sleep(0.05)
    return ApiServer(server=server, thread=thread, indexer=indexer,
                     url=f"http://{settings.api_host}:{settings.api_port}")

