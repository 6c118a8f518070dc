"""GET /events: round events pushed to nodes (fedchain.api.events), and the client side that reads them."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fakes import make_world
from fedchain.api.events import EventHub, TooManySubscribers
from fedchain.apiclient import MAX_EVENT_LINE, bounded_lines, parse_events
from fedchain.retry import TransientHTTPError


def _stream(world, actions, timeout: float = 10.0) -> str:
    """GET /events on the app while ``actions`` runs in a thread (it must end the stream)."""
    from fakes import TestClient

    with TestClient(world.app) as client:
        t = threading.Thread(target=actions, daemon=True)
        t.start()
        r = client.get("/events")
        t.join(timeout)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return r.text


def _wait_subscribed(hub: EventHub, n: int = 1) -> None:
    end = time.monotonic() + 5
    while len(hub) < n and time.monotonic() < end:
        time.sleep(0.01)
    assert len(hub) >= n, "the stream never subscribed"


def test_round_events_reach_an_open_stream_in_order_and_close_ends_it(tmp_path):
    world = make_world(tmp_path)
    hub = world.app.state.events

    def actions():
        _wait_subscribed(hub)
        hub.publish(2, "open")
        hub.publish(2, "finalized")
        hub.close()

    body = _stream(world, actions)
    events = list(parse_events(iter(body.split("\n"))))
    assert [(e["round"], e["status"]) for e in events] == [(2, "open"), (2, "finalized")]
    assert body.startswith("retry: ") and events[0]["seq"] < events[1]["seq"]
    assert len(hub) == 0  # the stream's subscription was dropped when it ended


def test_a_new_stream_first_gets_the_latest_round_event(tmp_path):
    world = make_world(tmp_path)
    hub = world.app.state.events
    hub.publish(3, "open")
    hub.publish(3, "sealed")
    hub.publish(2, "finalized")  # late news of an older round does not replace the latest

    def actions():
        _wait_subscribed(hub)
        hub.close()

    events = list(parse_events(iter(_stream(world, actions).split("\n"))))
    assert [(e["round"], e["status"]) for e in events] == [(3, "sealed")]


def test_indexed_round_opened_event_is_pushed_without_a_round_loop(tmp_path):
    world = make_world(tmp_path)  # round 1 is open on the fake chain
    world.indexer.sync()
    last = world.app.state.events.last
    assert last is not None and (last["round"], last["status"]) == (1, "open") and last["block"] >= 1


def test_events_beyond_the_stream_limit_get_503_too_many_streams(tmp_path):
    world = make_world(tmp_path)
    hub = world.app.state.events
    hub.max_subscribers = 0
    from fakes import TestClient

    with TestClient(world.app) as client:
        r = client.get("/events")
    assert r.status_code == 503 and r.json()["reason"] == "too_many_streams"


def test_hub_refuses_an_unknown_status():
    with pytest.raises(ValueError, match="unknown round status"):
        EventHub().publish(1, "maybe")


def test_slow_reader_is_dropped_instead_of_growing_the_queue():
    async def main():
        hub = EventHub()
        sub = hub.subscribe()
        for i in range(sub.queue.maxsize + 5):
            hub.publish(1, "open", i=i)
        await asyncio.sleep(0.05)  # let the deliveries run on this loop
        return hub, sub

    hub, sub = asyncio.run(main())
    assert sub.ended and len(hub) == 0 and sub.queue.qsize() <= sub.queue.maxsize


def test_subscriber_limit_is_enforced_by_the_hub():
    async def main():
        hub = EventHub(max_subscribers=1)
        hub.subscribe()
        with pytest.raises(TooManySubscribers):
            hub.subscribe()

    asyncio.run(main())


# --- the client side ------------------------------------------------------------------------------
def test_event_parser_skips_comments_other_events_and_bad_data():
    lines = [": keep-alive", "", "event: other", "data: {\"round\": 9}", "", "event: round", "data: not json", "",
             "event: round", "data: [1]", "", "event: round", "data: {\"round\": 4, \"status\": \"open\"}", ""]
    assert list(parse_events(iter(lines))) == [{"round": 4, "status": "open"}]


def test_event_stream_lines_are_split_on_lf_and_crlf_across_chunks():
    chunks = [b"event: ro", b"und\r\ndata: {\"round\": 1}\r", b"\n\r\n"]
    assert list(bounded_lines(iter(chunks))) == ["event: round", "data: {\"round\": 1}", ""]


def test_an_endless_event_line_is_refused_before_it_fills_memory():
    chunks = iter([b"x" * 1024] * (MAX_EVENT_LINE // 1024 + 2))
    with pytest.raises(TransientHTTPError, match="line over"):
        list(bounded_lines(chunks))
