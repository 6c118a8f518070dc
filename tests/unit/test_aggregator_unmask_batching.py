"""The round loop batches relayed unmasking posts: one transaction once the queue brings the
on-chain count to what the round needs, or once the oldest post has waited, not one per poll."""

from __future__ import annotations

from types import SimpleNamespace

from fedchain.aggregator.relay import RelayQueue, SignedUnmask
from fedchain.aggregator.service import UNMASK_BATCH_WAIT, Aggregator


def _agg(queue: RelayQueue) -> Aggregator:
    agg = Aggregator.__new__(Aggregator)  # only the batching rule is under test
    agg.relay = queue
    return agg


def _post(queue: RelayQueue, rid: int, i: int) -> None:
    queue.add_unmask(SignedUnmask(rid, f"0x{i:040x}", "0x" + f"{i:02x}" * 32, "0x" + "11" * 64))


def test_queued_posts_wait_until_they_reach_what_the_round_needs():
    q = RelayQueue()
    agg = _agg(q)
    phase = SimpleNamespace(unmask_count=2, survivor_count=10)
    for i in range(3):
        _post(q, 7, i)
    assert q.unmask_backlog(7)[0] == 3
    assert not agg._unmask_batch_due(7, phase, 6, past_cutoff=-100)  # 2 + 3 < 6
    _post(q, 7, 3)
    assert agg._unmask_batch_due(7, phase, 6, past_cutoff=-100)  # 2 + 4 >= 6
    assert not agg._unmask_batch_due(8, phase, 6, past_cutoff=-100)  # nothing queued for round 8


def test_the_oldest_post_waits_at_most_the_batch_wait_and_the_cutoff_forces_a_batch(monkeypatch):
    import fedchain.aggregator.relay as relay_mod

    clock = [100.0]
    monkeypatch.setattr(relay_mod.time, "monotonic", lambda: clock[0])
    q = RelayQueue()
    agg = _agg(q)
    phase = SimpleNamespace(unmask_count=0, survivor_count=10)
    _post(q, 1, 0)
    assert not agg._unmask_batch_due(1, phase, None, past_cutoff=-100)
    clock[0] += UNMASK_BATCH_WAIT + 0.01
    assert q.unmask_backlog(1)[0] == 1 and abs(q.unmask_backlog(1)[1] - UNMASK_BATCH_WAIT - 0.01) < 1e-9
    assert agg._unmask_batch_due(1, phase, None, past_cutoff=-100)
    clock[0] -= UNMASK_BATCH_WAIT + 0.01
    assert agg._unmask_batch_due(1, phase, None, past_cutoff=-0.5)  # within a second of the cut-off
    assert [e.node for e in q.take_unmasks(1)] == ["0x" + "0" * 40] and q.unmask_backlog(1) == (0, 0.0)
