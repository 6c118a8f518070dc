"""Round events pushed to nodes (``GET /events``, server-sent events).

An event is a hint, never a fact to act on: "round r is now open / sealed / finalized / expired,
look at the chain". A node that gets one re-reads the chain, which is the record, so an aggregator
that sends a false event costs a node one wasted read, and one that sends none costs it only its
polling fallback. Events come from the round loop as soon as its transaction is mined, and from the
indexer when it indexes a round event (an API process without a round loop still pushes).

The hub is thread-safe on the publishing side (the round loop and the indexer run in threads) and
asyncio-native on the subscribing side (one bounded queue per stream, no thread per subscriber).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

#: Round statuses an event may carry, in the order a round goes through them.
STATUSES = ("open", "sealed", "finalized", "expired")
_ORDER = {"open": 0, "sealed": 1, "finalized": 2, "expired": 2}


def _rank(event: dict[str, Any]) -> tuple[int, int]:
    return event["round"], _ORDER[event["status"]]


class TooManySubscribers(Exception):
    """The hub already serves its maximum number of streams."""


@dataclass
class Subscription:
    hub: "EventHub"
    key: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=64))
    #: Set when the hub dropped this subscriber (its queue overflowed, or the hub closed).
    ended: bool = False

    def close(self) -> None:
        self.hub._drop(self.key)


class EventHub:
    """Fan-out of round events to the open ``/events`` streams."""

    def __init__(self, max_subscribers: int = 1024) -> None:
        self.max_subscribers = max_subscribers
        self._lock = threading.Lock()
        self._subs: dict[int, Subscription] = {}
        self._next = 0
        self._seq = 0
        self._closed = False
        #: The latest event per round status change (sent first to a new stream, so a node that
        #: connects mid-round learns the current round without waiting for the next event).
        self.last: dict[str, Any] | None = None

    def subscribe(self) -> Subscription:
        """A new stream's queue; call from the event loop that will read it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if len(self._subs) >= self.max_subscribers:
                raise TooManySubscribers(f"{len(self._subs)} event streams are open (the limit)")
            self._next += 1
            sub = Subscription(self, self._next, loop)
            self._subs[sub.key] = sub
            last = self.last
        if last is not None:
            sub.queue.put_nowait(last)
        return sub

    def publish(self, round_id: int, status: str, **extra: Any) -> None:
        """Send ``{"seq", "round", "status", ...}`` to every stream (from any thread)."""
        if status not in STATUSES:
            raise ValueError(f"unknown round status {status!r}")
        with self._lock:
            if self._closed:
                return
            self._seq += 1
            event = {"seq": self._seq, "round": int(round_id), "status": status, **extra}
            if self.last is None or _rank(event) >= _rank(self.last):
                self.last = event
            subs = list(self._subs.values())
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(self._deliver, sub, event)
            except RuntimeError:  # that stream's loop has closed
                self._drop(sub.key)

    def _deliver(self, sub: Subscription, event: dict[str, Any] | None) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:  # a reader this far behind reconnects and re-reads the chain
            sub.ended = True
            self._drop(sub.key)
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)

    def _drop(self, key: int) -> None:
        with self._lock:
            self._subs.pop(key, None)

    def close(self) -> None:
        """End every stream (on shutdown: an open stream would hold the server's graceful exit)."""
        with self._lock:
            self._closed = True
            subs = list(self._subs.values())
            self._subs.clear()
        for sub in subs:
            sub.ended = True
            try:
                sub.loop.call_soon_threadsafe(self._end, sub)
            except RuntimeError:
                pass

    @staticmethod
    def _end(sub: Subscription) -> None:
        """After the events already queued (they are sent first), the end of the stream."""
        try:
            sub.queue.put_nowait(None)
        except asyncio.QueueFull:
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)


#: Contract events the indexer turns into round events, and the status each means.
CHAIN_EVENTS = {"RoundOpened": "open", "CommitmentsSealed": "sealed", "RoundFinalized": "finalized",
                "RoundExpired": "expired"}


def publish_chain_events(hub: EventHub, events: list[Any]) -> None:
    """Round events for the indexed contract events ``events`` (``EventRecord``s), in order."""
    for ev in events:
        status = CHAIN_EVENTS.get(ev.name)
        if status is not None:
            hub.publish(int(ev.args["roundId"]), status, block=int(ev.block_number))
