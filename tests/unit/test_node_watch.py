"""node.watch.RoundWatcher: pushed round events wake the node; without them it polls."""

from __future__ import annotations

import threading
import time

from node.watch import FALLBACK_POLL, RoundWatcher


def test_each_pushed_event_wakes_the_node_and_a_lost_stream_falls_back_to_polling():
    release = threading.Event()
    calls = []

    def events(on_open):
        calls.append(time.monotonic())
        if len(calls) == 1:
            on_open()
            yield {"round": 1, "status": "open"}
            release.wait(5)
            raise ConnectionError("stream lost")
        raise ConnectionError("API down")

    logs = []
    w = RoundWatcher(events, log=logs.append, max_backoff=0.05).start()
    try:
        assert w.wake.wait(5) and w.received == 1 and w.connected
        t = time.monotonic()
        assert w.wait(0.5) is True and time.monotonic() - t < 0.5  # the pending event wakes at once
        release.set()
        end = time.monotonic() + 5
        while w.connected and time.monotonic() < end:
            time.sleep(0.01)
        assert not w.connected
        assert w.wake.is_set()  # woken to read the chain: an event may have been missed
        end = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < end:
            time.sleep(0.01)
        assert len(calls) >= 3  # reconnects with backoff
        w.wake.clear()
        t = time.monotonic()
        assert w.wait(0.2) is False and time.monotonic() - t < FALLBACK_POLL  # polls at the node's own rate
    finally:
        w.stop()
    assert any("following the aggregator's round events" in m for m in logs)
    assert any("round events unavailable (ConnectionError)" in m for m in logs)
