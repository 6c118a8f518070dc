"""Round events from the aggregator's ``GET /events`` stream, as a wake-up for the node's loop.

An event only wakes the node: it then reads the round from the chain, as it would after a poll.
So an aggregator that pushes nothing, or nonsense, costs a node its slower polling fallback or a
wasted read, never a wrong step. While the stream is down the node polls at its normal rate and
the watcher reconnects with capped backoff.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

#: While events arrive, the node still reads the chain this often (seconds): a missed event, or an
#: aggregator that pushes nothing, costs at most this.
FALLBACK_POLL = 5.0


class RoundWatcher:
    """A daemon thread that follows ``events(on_open=...)`` (``ApiClient.events``) and sets
    :attr:`wake` on each event."""

    def __init__(self, events: Callable[..., Any], *, log: Callable[[str], None] = print,
                 max_backoff: float = 30.0) -> None:
        self._events = events
        self.log = log
        self.max_backoff = max_backoff
        self.wake = threading.Event()
        #: True while a stream is open (the loop may then poll at FALLBACK_POLL).
        self.connected = False
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fedchain-events", daemon=True)

    def start(self) -> "RoundWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, poll: float) -> bool:
        """Sleep until an event, or ``poll`` seconds (``FALLBACK_POLL`` while the stream is up,
        if longer); True if woken by an event. Clears the wake-up, so call it before reading the chain."""
        woke = self.wake.wait(max(poll, FALLBACK_POLL) if self.connected else poll)
        self.wake.clear()
        return woke

    def _run(self) -> None:
        delay = 1.0
        announced = False
        while not self._stop.is_set():
            def opened() -> None:
                nonlocal delay, announced
                self.connected = True
                delay = 1.0
                if not announced:
                    self.log("following the aggregator's round events (GET /events); polling the chain "
                             f"every {FALLBACK_POLL:.0f} s besides")
                    announced = True

            try:
                for _event in self._events(on_open=opened):
                    self.received += 1
                    self.wake.set()
                    if self._stop.is_set():
                        return
            except Exception as exc:  # noqa: BLE001 - any failure of a hint channel: poll, reconnect later
                if self.connected or delay == 1.0:
                    self.log(f"[dim]round events unavailable ({type(exc).__name__}); polling the chain, "
                             f"reconnecting in {delay:.0f} s[/]")
            if self.connected:
                self.connected = False
                self.wake.set()  # look at the chain now: an event may have been missed
            self._stop.wait(delay)
            delay = min(self.max_backoff, delay * 2)
