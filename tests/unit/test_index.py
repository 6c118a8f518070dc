"""The SQL index: events in, rows out; idempotent, batch-independent, rebuildable, report merge."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from fakes import FakeChain, make_world, model_bytes
from fedchain.errors import RpcUnavailable
from fedchain.index import Indexer, Node, Round, SyncState, Update, Upload


def snapshot(indexer: Indexer) -> dict:
    """Every derived row, as plain data."""
    with indexer.session() as s:
        rounds = [
            {c.name: getattr(r, c.name) for c in Round.__table__.columns}
            for r in s.scalars(select(Round).order_by(Round.round_id))
        ]
        updates = [
            {c.name: getattr(u, c.name) for c in Update.__table__.columns}
            for u in s.scalars(select(Update).order_by(Update.round_id, Update.node))
        ]
        nodes = [
            {c.name: getattr(n, c.name) for c in Node.__table__.columns}
            for n in s.scalars(select(Node).order_by(Node.address))
        ]
        state = s.get(SyncState, 1)
        return {
            "rounds": rounds,
            "updates": updates,
            "nodes": nodes,
            "state": (state.last_block, state.chain_id, state.rounds_address, state.genesis_model_hash),
        }


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, open_round=False)
    w.run_round([True, True, False])
    w.run_round([True, False])
    w.chain.remove_node(w.nodes[2].address)
    w.chain.update_node(w.nodes[1].address, b"\x99" * 33, "0x" + "77" * 32)
    rid = w.open_round(min_updates=2)
    w.chain.submit_update(rid, w.nodes[0].address, "0x" + "cd" * 32, 50)
    return w


def test_sync_indexes_rounds_updates_and_nodes_from_events(world):
    n = world.indexer.sync()
    assert n == len(world.chain.events(0))
    snap = snapshot(world.indexer)
    assert [r["status"] for r in snap["rounds"]] == ["finalized", "finalized", "open"]
    for r in snap["rounds"]:
        info = world.chain.get_round(r["round_id"])
        assert r["base_model_hash"] == info.base_model_hash
        assert r["config_hash"] == info.config_hash
        assert r["global_model_hash"] == info.global_model_hash
        assert r["report_hash"] == info.report_hash
        assert r["commit_count"] == info.commit_count
        assert r["accepted_count"] == info.accepted_count
        assert r["opened_block"] == info.opened_at
        assert (r["closed_block"] or 0) == info.closed_at
        assert r["open_gas_used"] == world.chain.receipt(r["opened_tx"]).gas_used
    nodes = {n["address"]: n for n in snap["nodes"]}
    assert nodes[world.nodes[2].address]["active"] is False
    assert nodes[world.nodes[2].address]["removed_block"] is not None
    assert nodes[world.nodes[1].address]["public_key"] == "0x" + "99" * 33
    assert nodes[world.nodes[1].address]["metadata_hash"] == "0x" + "77" * 32
    assert snap["state"][3] == world.chain.genesis_model_hash()
    assert snap["state"][0] == world.chain.block_number()


def test_sync_is_idempotent(world):
    world.indexer.sync()
    first = snapshot(world.indexer)
    assert world.indexer.sync() == 0
    assert snapshot(world.indexer) == first


def test_sync_result_does_not_depend_on_batch_size(world, tmp_path):
    world.indexer.sync()
    small = Indexer(world.chain, world.store, f"sqlite:///{tmp_path / 'small.sqlite'}", batch_blocks=2)
    small.sync()
    assert snapshot(small) == snapshot(world.indexer)


def test_interrupted_sync_resumes_without_double_counting(world, tmp_path):
    idx = Indexer(world.chain, world.store, f"sqlite:///{tmp_path / 'resume.sqlite'}", batch_blocks=3)
    real_events = world.chain.events
    calls = {"n": 0}

    def flaky(from_block, to_block=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RpcUnavailable("http://fake", "dropped")
        return real_events(from_block, to_block)

    world.chain.events = flaky
    with pytest.raises(RpcUnavailable):
        idx.sync()
    assert idx.last_error and "RpcUnavailable" in idx.last_error
    partial = idx.indexed_block()
    assert world.chain.deploy_block <= partial < world.chain.block_number()
    idx.sync()
    assert idx.last_error is None
    world.indexer.sync()
    assert snapshot(idx) == snapshot(world.indexer)


def test_report_merge_fills_accepted_reason_weight_and_metrics(world):
    world.indexer.sync()
    with world.indexer.session() as s:
        r1 = s.get(Round, 1)
        assert r1.metrics == {"rmse": 4.2, "max_abs_error": 10.1}
        assert r1.strategy == {"name": "fedavg", "params": {}}
        ups = {u.node: u for u in r1.updates}
        assert ups[world.nodes[0].address].accepted is True
        assert ups[world.nodes[0].address].weight == pytest.approx(100 / 300)
        assert ups[world.nodes[2].address].accepted is False
        assert ups[world.nodes[2].address].reason.startswith("non_finite")
        open_round = s.get(Round, 3)
        assert open_round.metrics is None
        assert all(u.accepted is None for u in open_round.updates)


def test_report_missing_from_store_is_merged_on_a_later_sync(tmp_path):
    w = make_world(tmp_path, open_round=False)
    rid, report = w.run_round([True, False], store_report=False)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.status == "finalized" and r.metrics is None and r.report_merged is False
        assert [u.accepted for u in r.updates] == [None, None]
    w.store.put(report)
    assert w.indexer.sync() == 0  # no new events, but the report is picked up
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.metrics is not None and r.report_merged is True and r.report_error is None
        assert sorted(u.accepted for u in r.updates) == [False, True]


def test_report_that_disagrees_with_the_chain_is_recorded_not_merged(tmp_path):
    w = make_world(tmp_path, open_round=False)
    rid = w.open_round()
    h = w.store.put(model_bytes(3.0))
    w.chain.submit_update(rid, w.nodes[0].address, h, 10)
    new_hash = w.store.put(model_bytes(4.0))
    bogus = w.report(rid, new_hash, [(w.nodes[0], "0x" + "ee" * 32, 10, True, None, 1.0)])
    w.chain.warp_past(rid)
    w.chain.finalize_round(rid, new_hash, w.store.put(bogus), 1)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.report_merged is True
        assert "update_hash" in r.report_error
        assert r.metrics is None and r.updates[0].accepted is None


def test_expired_round_records_who_expired_it(tmp_path):
    w = make_world(tmp_path)
    w.chain.warp_past(1, grace=True)
    w.chain.expire_round(1, by=w.nodes[1].address)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, 1)
        assert (r.status, r.expired_by) == ("expired", w.nodes[1].address)
        assert r.closed_block == w.chain.get_round(1).closed_at
        assert r.close_gas_used == w.chain.receipt(r.closed_tx).gas_used


def test_index_of_another_deployment_is_wiped_and_rebuilt(world, tmp_path):
    world.indexer.sync()
    url = world.settings.resolved_db_url()
    other = FakeChain(rounds_address="0x" + "99" * 20)
    other.admit_node(world.nodes[0].address)
    idx = Indexer(other, world.store, url)
    idx.sync()
    snap = snapshot(idx)
    assert snap["rounds"] == [] and [n["address"] for n in snap["nodes"]] == [world.nodes[0].address]
    assert snap["state"][2] == other.rounds_address


def test_rebuild_reproduces_derived_rows_and_drops_uploads(world):
    world.indexer.sync()
    before = snapshot(world.indexer)
    with world.indexer.session() as s:
        s.add(Upload(round_id=3, node=world.nodes[0].address, blob_hash="0x" + "cd" * 32, size=1,
                     received_at=datetime.now(timezone.utc)))
        s.commit()
    assert world.indexer.uploads_for(3, world.nodes[0].address.lower()) == ["0x" + "cd" * 32]
    world.indexer.rebuild()
    assert snapshot(world.indexer) == before
    assert world.indexer.uploads_for(3, world.nodes[0].address) == []


def test_sync_error_is_remembered_until_a_good_sync(world):
    world.chain.down = True
    with pytest.raises(RpcUnavailable):
        world.indexer.sync()
    assert "cannot reach the chain" in world.indexer.last_error
    world.chain.down = False
    world.indexer.sync()
    assert world.indexer.last_error is None and world.indexer.last_sync_at is not None
