"""Round events pushed to nodes as server-sent events (hub: :mod:`fedchain.api.events`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from fedchain.api.deps import ServiceUnavailable, err, with_reason
from fedchain.api.events import TooManySubscribers

router = APIRouter(tags=["rounds"])

#: A comment line this often keeps idle proxies from closing the stream, and lets the server
#: notice a client that left (seconds).
KEEPALIVE_SECONDS = 15.0
#: A stream ends after this long; the client reconnects (``retry`` says after how long).
STREAM_SECONDS = 600.0


@router.get(
    "/events",
    summary="Round events, pushed (server-sent events): open, sealed, finalized, expired",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "An event stream. Each event is `event: round` with `data` a JSON object "
                             "`{\"seq\", \"round\", \"status\", \"block\"?}`; the first is the latest one "
                             "the aggregator has seen. Comment lines keep the stream alive."},
        503: err("too many event streams are open (too_many_streams): poll the chain instead"),
    },
)
async def events(request: Request) -> StreamingResponse:
    """A hint to look at the chain, never a fact to act on: a node re-reads the round from the
    contract after each event, and polls the chain (more slowly) whether or not events arrive.
    The stream ends after 10 minutes or when the service stops; reconnect after ``retry`` ms."""
    hub = request.app.state.events
    try:
        sub = hub.subscribe()
    except TooManySubscribers as exc:
        raise with_reason(ServiceUnavailable(str(exc), hint="poll the chain (currentRoundId, getRound) instead"),
                          "too_many_streams") from exc

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_SECONDS
        try:
            yield "retry: 1000\n\n"
            while loop.time() < end:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if event is None:  # the hub ended this stream
                    return
                yield f"id: {event['seq']}\nevent: round\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
