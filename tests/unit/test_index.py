"""The SQL index: events in, rows out; idempotent, batch-independent, rebuildable, report merge;
integers of any on-chain width; confirmation depth, reorganisations and chain restarts."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from fakes import FAR_DEADLINE, FakeChain, TestClient, account, make_world, model_bytes
from fedchain.api import create_app
from fedchain.auth import sign_commitment
from fedchain.chain.types import RoundParams
from fedchain.codec import encode_json
from fedchain.errors import RpcUnavailable
from fedchain.index import (
    BlockCheckpoint, Indexer, Node, NodeEvent, Round, SkippedCommitment, SyncState, Update, Upload,
)

U64 = 2**64 - 1


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
        skipped = [
            {c.name: getattr(k, c.name) for c in SkippedCommitment.__table__.columns}
            for k in s.scalars(select(SkippedCommitment).order_by(SkippedCommitment.block, SkippedCommitment.log_index))
        ]
        node_events = [
            {c.name: getattr(e, c.name) for c in NodeEvent.__table__.columns}
            for e in s.scalars(select(NodeEvent).order_by(NodeEvent.block, NodeEvent.log_index))
        ]
        state = s.get(SyncState, 1)
        return {
            "rounds": rounds,
            "updates": updates,
            "nodes": nodes,
            "skipped": skipped,
            "node_events": node_events,
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


def fresh(chain, store, tmp_path, name="fresh.sqlite", **kw) -> Indexer:
    """A brand-new index of ``chain``, synced: what an index of it must equal."""
    idx = Indexer(chain, store, f"sqlite:///{tmp_path / name}", **kw)
    idx.sync()
    return idx


def add_upload(indexer: Indexer, round_id: int, node: str, blob_hash: str = "0x" + "ab" * 32) -> None:
    with indexer.session() as s:
        s.add(Upload(round_id=round_id, node=node, blob_hash=blob_hash, size=1,
                     received_at=datetime.now(timezone.utc)))
        s.commit()


# --- integers of every on-chain width ------------------------------------------------------------
def test_hostile_uint64_values_are_stored_exactly(tmp_path):
    w = make_world(tmp_path, open_round=False)
    deadline = 2**40 - 1
    params = RoundParams(deadline=deadline, min_updates=1, max_samples=U64, selection_rate=U64,
                         relay_cutoff=2**32 - 1)
    config = w.store.put(encode_json({"strategy": {"name": "fedavg", "params": {}}}))
    rid = w.chain.open_round(w.model_hash, config, params)
    selected = [n for n in w.nodes if w.chain.is_eligible(rid, n.address)]
    assert selected, "rate 2^64-1 selects (almost) everyone"
    w.chain.submit_update(rid, selected[0].address, "0x" + "cd" * 32, U64)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert (r.deadline, r.max_samples, r.selection_rate, r.relay_cutoff) == (deadline, U64, U64, 2**32 - 1)
        assert r.eligible_count == 3 and r.seed == w.chain.get_round(rid).seed
        assert r.updates[0].num_samples == U64
        # comparisons and ordering are numeric, not lexicographic
        assert s.scalar(select(Update.node).where(Update.num_samples > 2**63)) == selected[0].address
    # stored as an exact decimal string: SQLite's INTEGER (and PostgreSQL's BIGINT) stop at 2^63-1
    db = sqlite3.connect(tmp_path / "data" / "index.sqlite")
    (raw,) = db.execute("SELECT num_samples FROM updates").fetchone()
    db.close()
    assert int(raw) == U64
    # ...and served exactly
    d = w.client.get(f"/rounds/{rid}").json()
    assert (d["deadline"], d["max_samples"], d["selection_rate"]) == (deadline, U64, U64)
    assert d["updates"][0]["num_samples"] == U64
    assert w.client.get("/rounds").json()["items"][0]["max_samples"] == U64


def test_round_params_decoded_as_a_mapping_are_indexed_too(tmp_path):
    """web3 may decode the RoundOpened.params tuple as a dict of component names."""
    w = make_world(tmp_path, open_round=False)
    rid = w.open_round()
    for ev in w.chain._log:
        if ev.name == "RoundOpened":
            d, m, x, r, c, t, u, w_ = ev.args["params"]
            ev.args["params"] = {"deadline": d, "minUpdates": m, "maxSamples": x, "selectionRate": r,
                                 "relayCutoff": c, "threshold": t, "unmaskWindow": u, "closeWindow": w_}
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        info = w.chain.get_round(rid)
        assert (r.deadline, r.min_updates, r.max_samples, r.selection_rate, r.relay_cutoff, r.eligible_count) == (
            info.deadline, info.min_updates, info.max_samples, info.selection_rate, info.relay_cutoff,
            info.eligible_count)
        assert r.seed is None  # not sampled: zero seed


def test_a_deadline_brought_forward_by_the_close_window_is_indexed_and_served(tmp_path):
    w = make_world(tmp_path, open_round=False)
    rid = w.chain.open_round(w.model_hash, "0x" + "c0" * 32, RoundParams(FAR_DEADLINE, 2, 1000, close_window=60))
    w.chain.submit_update(rid, w.nodes[0].address, "0x" + "11" * 32, 10)
    w.indexer.sync()
    with w.indexer.session() as s:
        assert s.get(Round, rid).deadline == FAR_DEADLINE
    w.chain.submit_update(rid, w.nodes[1].address, "0x" + "22" * 32, 10)
    closes = w.chain.get_round(rid).deadline
    assert closes < FAR_DEADLINE
    w.indexer.sync()
    with w.indexer.session() as s:
        assert s.get(Round, rid).deadline == closes
    assert w.client.get(f"/rounds/{rid}").json()["deadline"] == closes


def test_skipped_relayed_commitments_are_indexed_with_reason_and_batch_gas(tmp_path):
    w = make_world(tmp_path, open_round=False)
    rid = w.chain.open_round(w.model_hash, "0x" + "c0" * 32, RoundParams(FAR_DEADLINE, 1, 1000))
    c, addr = w.chain.chain_id, w.chain.rounds_address
    h = ["0x" + f"{i:02x}" * 32 for i in (1, 2, 3, 4)]
    outsider = account(9)
    batch = [
        (h[0], 10, sign_commitment(w.nodes[0], c, addr, rid, h[0], 10)),
        (h[1], 20, sign_commitment(w.nodes[1], c, addr, rid, h[1], 20)),
        (h[2], 30, sign_commitment(w.nodes[0], c, addr, rid, h[2], 30)),  # already submitted
        (h[3], 5000, sign_commitment(w.nodes[2], c, addr, rid, h[3], 5000)),  # above max_samples
        (h[3], 40, sign_commitment(outsider, c, addr, rid, h[3], 40)),  # not a node
    ]
    tx = w.chain.submit_batch(rid, batch)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.commit_count == 2
        assert {u.gas_used for u in r.updates} == {tx.gas_used} and {u.tx_hash for u in r.updates} == {tx.tx_hash}
        assert [(k.node, k.reason_code) for k in r.skipped] == [
            (w.nodes[0].address, 3), (w.nodes[2].address, 6), (outsider.address, 2)]
    d = w.client.get(f"/rounds/{rid}").json()
    assert [(k["node"], k["reason"]) for k in d["skipped"]] == [
        (w.nodes[0].address, "already_submitted"), (w.nodes[2].address, "too_many_samples"),
        (outsider.address, "not_eligible")]
    assert all(k["tx_hash"] == tx.tx_hash and k["block"] == tx.block_number for k in d["skipped"])


# --- confirmation depth ----------------------------------------------------------------------------
def test_blocks_within_the_confirmation_depth_are_not_indexed(tmp_path):
    w = make_world(tmp_path, open_round=False)
    idx = Indexer(w.chain, w.store, f"sqlite:///{tmp_path / 'conf.sqlite'}", confirmations=3)
    rid = w.open_round()
    w.chain.submit_update(rid, w.nodes[0].address, "0x" + "cd" * 32, 7)
    head = w.chain.block_number()
    idx.sync()
    assert idx.indexed_block() == head - 3
    with idx.session() as s:
        assert s.get(Round, rid) is None  # opened in block head-1: not confirmed yet
    w.chain.mine_empty(2)
    idx.sync()
    with idx.session() as s:  # the open is 3 deep now, the commit (block head) only 2
        assert s.get(Round, rid) is not None and s.get(Round, rid).commit_count == 0
    w.chain.mine_empty(1)
    idx.sync()
    assert idx.indexed_block() == head
    with idx.session() as s:
        assert s.get(Round, rid).commit_count == 1


def test_confirmations_must_not_be_negative(tmp_path):
    with pytest.raises(ValueError):
        Indexer(FakeChain(), None, "sqlite://", confirmations=-1)


# --- reorganisations -----------------------------------------------------------------------------
def test_reorg_rewinds_to_the_fork_and_matches_a_fresh_index(world, tmp_path, caplog):
    world.indexer.sync()
    snap = world.chain.snapshot()
    fork_block = world.chain.block_number()
    # branch A: round 3 gets more commits and is finalized; a node joins, one is removed
    world.chain.submit_update(3, world.nodes[1].address, "0x" + "ce" * 32, 60)
    newcomer = account(7)
    world.chain.admit_node(newcomer.address, b"\x07" * 33)
    world.chain.remove_node(world.nodes[0].address)
    world.chain.warp_past(3)
    world.chain.finalize_round(3, world.store.put(model_bytes(8.0)), "0x" + "ef" * 32, 2)
    world.indexer.sync()
    assert snapshot(world.indexer)["rounds"][2]["status"] == "finalized"
    add_upload(world.indexer, 3, world.nodes[1].address)
    # the reorg: branch B replaces A from the fork on
    world.chain.revert(snap)
    world.chain.update_node(world.nodes[1].address, b"\x55" * 33, "0x" + "55" * 32)
    world.chain.warp_past(3, grace=True)
    world.chain.expire_round(3, by=world.nodes[1].address)
    world.chain.mine_empty(3)  # longer than branch A
    with caplog.at_level(logging.WARNING, logger="fedchain.index.indexer"):
        world.indexer.sync()
    warnings = [r for r in caplog.records if "reorganisation" in r.getMessage()]
    assert len(warnings) == 1
    assert world.indexer.reorgs == 1 and world.indexer.last_reorg[0] == fork_block
    assert snapshot(world.indexer) == snapshot(fresh(world.chain, world.store, tmp_path))
    with world.indexer.session() as s:
        assert s.get(Node, newcomer.address) is None
        assert s.get(Node, world.nodes[0].address).active is True
        assert s.get(Round, 3).status == "expired" and s.get(Round, 3).commit_count == 1
    # the upload (not on chain) survived the rewind
    assert world.indexer.uploads_for(3, world.nodes[1].address) == ["0x" + "ab" * 32]
    assert any("rewound 1 chain reorganisation" in n for n in world.indexer.notices)
    assert world.indexer.sync() == 0 and world.indexer.reorgs == 1  # stable afterwards


def test_reorg_to_a_shorter_chain_drops_the_lost_blocks(world, tmp_path):
    snap = world.chain.snapshot()
    world.chain.submit_update(3, world.nodes[1].address, "0x" + "ce" * 32, 60)
    world.chain.warp_past(3)
    world.chain.finalize_round(3, world.store.put(model_bytes(8.0)), "0x" + "ef" * 32, 2)
    world.indexer.sync()
    world.chain.revert(snap)  # nothing mined since: the chain is shorter than the index
    assert world.chain.block_number() < world.indexer.indexed_block()
    world.indexer.sync()
    assert world.indexer.indexed_block() == world.chain.block_number()
    assert snapshot(world.indexer) == snapshot(fresh(world.chain, world.store, tmp_path))
    with world.indexer.session() as s:
        assert s.get(Round, 3).status == "open" and s.get(Round, 3).commit_count == 1


def test_reorg_replaces_a_finalized_round_and_its_merged_report(tmp_path):
    w = make_world(tmp_path, open_round=False)
    w.run_round([True, True])
    w.indexer.sync()
    snap = w.chain.snapshot()
    model = w.model_hash
    rid, _ = w.run_round([True, False], metrics={"rmse": 1.0})
    w.indexer.sync()
    with w.indexer.session() as s:
        assert s.get(Round, rid).metrics == {"rmse": 1.0}
    w.chain.revert(snap)
    w.model_hash = model
    rid2, _ = w.run_round([False, True, True], metrics={"rmse": 2.0})
    assert rid2 == rid
    w.indexer.sync()
    assert snapshot(w.indexer) == snapshot(fresh(w.chain, w.store, tmp_path))
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.metrics == {"rmse": 2.0} and r.commit_count == 3
        assert {u.node: u.accepted for u in r.updates} == {
            w.nodes[0].address: False, w.nodes[1].address: True, w.nodes[2].address: True}


def test_reorg_of_the_genesis_model_is_rewound(tmp_path):
    chain = FakeChain()
    node = account(1)
    chain.admit_node(node.address)
    store = make_world(tmp_path / "w", open_round=False).store
    idx = Indexer(chain, store, f"sqlite:///{tmp_path / 'g.sqlite'}")
    idx.sync()
    snap = chain.snapshot()
    chain.set_genesis_model("0x" + "11" * 32)
    idx.sync()
    chain.revert(snap)
    chain.mine_empty(2)
    chain.set_genesis_model("0x" + "22" * 32)
    idx.sync()
    assert snapshot(idx)["state"][3] == "0x" + "22" * 32
    assert snapshot(idx) == snapshot(fresh(chain, store, tmp_path))


def test_reorg_deeper_than_every_checkpoint_rewinds_to_the_deployment(world, tmp_path):
    idx = Indexer(world.chain, world.store, f"sqlite:///{tmp_path / 'deep.sqlite'}", batch_blocks=2, checkpoints=2)
    snap = world.chain.snapshot()
    world.chain.mine_empty(1)
    early = world.chain.snapshot()  # the fork point: one block above the first snapshot
    for i in range(6):
        world.chain.admit_node(account(20 + i).address)
    idx.sync()
    with idx.session() as s:
        assert s.scalar(select(BlockCheckpoint.block).order_by(BlockCheckpoint.block)) > early["_block"]
    world.chain.revert(snap)
    world.chain.admit_node(account(40).address)
    idx.sync()
    assert idx.reorgs == 1 and idx.last_reorg[0] == world.chain.deploy_block - 1
    assert snapshot(idx) == snapshot(fresh(world.chain, world.store, tmp_path))


def test_repeated_reorgs_each_match_a_fresh_index(world, tmp_path):
    world.indexer.batch_blocks = 1  # a checkpoint per block
    world.indexer.sync()
    base = world.chain.snapshot()
    for k in range(3):
        world.chain.revert(base)
        for i in range(k + 1):
            world.chain.submit_update(3, world.nodes[1].address, "0x" + f"{0xa0 + k:02x}" * 32, 10 + k) if i == 0 \
                else world.chain.admit_node(account(30 + k * 10 + i).address)
        world.indexer.sync()
        assert snapshot(world.indexer) == snapshot(fresh(world.chain, world.store, tmp_path, f"f{k}.sqlite"))
    assert world.indexer.reorgs == 2  # the first revert came before anything new was indexed


def test_a_reorg_during_a_sync_is_left_for_the_next_sync(world, tmp_path):
    world.indexer.sync()
    snap = world.chain.snapshot()
    world.chain.submit_update(3, world.nodes[1].address, "0x" + "ce" * 32, 60)
    real = world.chain.events

    def reorging(from_block, to_block=None, **kw):
        out = real(from_block, to_block)
        world.chain.revert(snap)  # the chain moves while the events are in flight
        world.chain.admit_node(account(8).address)
        world.chain.events = real
        return out

    world.chain.events = reorging
    world.indexer.sync()
    with world.indexer.session() as s:  # nothing from the abandoned branch was committed
        assert s.get(Round, 3).commit_count == 1
    world.indexer.sync()
    assert snapshot(world.indexer) == snapshot(fresh(world.chain, world.store, tmp_path))


# --- another chain behind the same addresses -----------------------------------------------------
def test_restarted_chain_at_the_same_addresses_wipes_and_rebuilds_the_index(world, tmp_path, caplog):
    world.indexer.sync()
    add_upload(world.indexer, 3, world.nodes[0].address)
    assert world.indexer.indexed_block() > 15
    # anvil restarted, contracts redeployed at the same addresses: same chain id, fewer blocks
    new = FakeChain(genesis_salt="restarted")
    assert (new.chain_id, new.rounds_address, new.deploy_block) == (
        world.chain.chain_id, world.chain.rounds_address, world.chain.deploy_block)
    new.admit_node(world.nodes[0].address)
    new.set_genesis_model(world.store.put(model_bytes(1.0)))
    idx = Indexer(new, world.store, world.settings.resolved_db_url())
    with caplog.at_level(logging.WARNING, logger="fedchain.index.indexer"):
        idx.sync()
    assert [r for r in caplog.records if "chain restarted" in r.getMessage()]
    assert idx.restarts == 1 and idx.notice.startswith("chain restarted: index rebuilt")
    assert idx.indexed_block() == new.block_number()
    assert snapshot(idx) == snapshot(fresh(new, world.store, tmp_path))
    assert idx.uploads_for(3, world.nodes[0].address) == []  # uploads of the old chain are gone
    app = create_app(world.settings, chain=new, store=world.store, indexer=idx, background_sync=False)
    h = TestClient(app).get("/health").json()
    assert h["status"] == "ok" and "chain restarted: index rebuilt" in h["detail"]
    assert h["indexed_block"] == new.block_number()
    assert TestClient(app).get("/rounds").json()["total"] == 0


def test_restart_detected_even_when_the_new_chain_is_longer(world, tmp_path):
    world.indexer.sync()
    new = FakeChain(genesis_salt="again")
    new.mine_empty(world.chain.block_number() + 5)
    idx = Indexer(new, world.store, world.settings.resolved_db_url())
    idx.sync()
    assert idx.restarts == 1 and snapshot(idx)["rounds"] == []


def test_index_with_an_older_schema_is_rebuilt(tmp_path, world):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE rounds (round_id BIGINT PRIMARY KEY, status VARCHAR(16), num_samples BIGINT)")
    conn.execute("CREATE TABLE sync_state (id INTEGER PRIMARY KEY, chain_id BIGINT, last_block BIGINT)")
    conn.execute("INSERT INTO sync_state VALUES (1, 31337, 999)")
    conn.commit()
    conn.close()
    idx = Indexer(world.chain, world.store, f"sqlite:///{db}")
    idx.sync()
    assert snapshot(idx) == snapshot(fresh(world.chain, world.store, tmp_path))


# --- round reports: bounded, never fatal ---------------------------------------------------------
def _finalize_with_report(w, report: bytes) -> int:
    rid = w.open_round()
    h = w.store.put(model_bytes(3.0))
    w.chain.submit_update(rid, w.nodes[0].address, h, 10)
    new_hash = w.store.put(model_bytes(4.0))
    w.chain.warp_past(rid)
    w.chain.finalize_round(rid, new_hash, w.store.put(report), 1)
    return rid


def test_oversized_report_is_refused_by_its_stored_size_before_reading(tmp_path, monkeypatch):
    w = make_world(tmp_path, open_round=False)
    big = encode_json({"round": 1, "padding": "x" * (w.indexer.max_json_bytes + 10)})
    rid = _finalize_with_report(w, big)
    read = []
    real_get = w.store.get
    monkeypatch.setattr(w.store, "get", lambda h: read.append(h) or real_get(h))
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.report_merged and "more than the limit" in r.report_error
        assert r.report_hash not in read
    assert w.client.get(f"/rounds/{rid}").status_code == 200


@pytest.mark.parametrize("report", [
    b"\xff\xfe not json",
    b"[1, 2, 3]",
    b'{"round": "abc"}',
    b'{"round": [1]}',
    b'{"updates": {"a": 1}}',
    b'{"metrics": {"rmse": 1e400}}',
    b'{"strategy": {"name": "x", "params": {"lr": -1e999}}}',
    b'{"updates": [{"node": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "accepted": true, "weight": 1e400}]}',
    b'{"updates": [{"node": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "weight": "heavy"}]}',
    b'{"updates": [{"node": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "weight": 1' + b"0" * 400 + b'}]}',
    b'{"updates": ["nope"]}',
])
def test_malformed_report_is_recorded_and_never_crashes(tmp_path, report):
    w = make_world(tmp_path, open_round=False)
    rid = _finalize_with_report(w, report)
    w.indexer.sync()
    with w.indexer.session() as s:
        r = s.get(Round, rid)
        assert r.report_merged and r.report_error
        assert r.metrics is None and all(u.accepted is None and u.weight is None for u in r.updates)
    d = w.client.get(f"/rounds/{rid}")
    assert d.status_code == 200 and d.json()["report_error"]
    assert w.client.get("/rounds").status_code == 200
