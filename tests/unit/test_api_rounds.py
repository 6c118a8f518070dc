"""GET /rounds, /rounds/{id}, /nodes: agreement with the chain, pagination, report merge, rebuild."""

from __future__ import annotations

import pytest

from fakes import make_world, model_bytes
from fedchain.api import create_app
from fedchain.index import Indexer


@pytest.fixture
def world(tmp_path):
    """Round 1 finalized (3 commits, 1 rejected), round 2 expired, round 3 finalized, round 4 open."""
    w = make_world(tmp_path, open_round=False)
    w.run_round([True, True, False], metrics={"rmse": 4.2, "max_abs_error": 10.1})
    rid = w.open_round()
    w.chain.warp_past(rid, grace=True)
    w.chain.expire_round(rid, by=w.nodes[1].address)
    w.run_round([True, True])
    rid = w.open_round(min_updates=2)
    w.chain.submit_update(rid, w.nodes[0].address, "0x" + "cd" * 32, 50)
    w.indexer.sync()
    return w


def test_round_detail_agrees_with_the_chain(world):
    for rid in range(1, 5):
        info = world.chain.get_round(rid)
        r = world.client.get(f"/rounds/{rid}")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["round_id"] == rid
        assert d["status"] == info.status.label
        assert d["base_model_hash"] == info.base_model_hash
        assert d["config_hash"] == info.config_hash
        assert d["global_model_hash"] == info.global_model_hash
        assert d["report_hash"] == info.report_hash
        assert d["deadline"] == info.deadline
        assert d["min_updates"] == info.min_updates
        assert (d["max_samples"], d["selection_rate"], d["relay_cutoff"], d["eligible_count"]) == (
            info.max_samples, info.selection_rate, info.relay_cutoff, info.eligible_count)
        assert d["seed"] is None and d["skipped"] == []
        assert d["commit_count"] == info.commit_count == len(d["updates"])
        assert d["accepted_count"] == info.accepted_count
        assert d["opened_block"] == info.opened_at
        assert (d["closed_block"] or 0) == info.closed_at
        assert d["open_gas_used"] == world.chain.receipt(d["opened_tx"]).gas_used
        if d["closed_tx"]:
            assert d["close_gas_used"] == world.chain.receipt(d["closed_tx"]).gas_used
        for u in d["updates"]:
            c = world.chain.get_commitment(rid, u["node"])
            assert (u["update_hash"], u["num_samples"]) == (c.update_hash, c.num_samples)
            assert u["gas_used"] == world.chain.receipt(u["tx_hash"]).gas_used
    assert world.client.get("/rounds/2").json()["expired_by"] == world.nodes[1].address


def test_round_detail_merges_the_report_into_updates_and_metrics(world):
    d = world.client.get("/rounds/1").json()
    assert d["metrics"] == {"rmse": 4.2, "max_abs_error": 10.1}
    assert d["strategy"] == {"name": "fedavg", "params": {}}
    assert d["report_error"] is None
    ups = {u["node"]: u for u in d["updates"]}
    good, bad = ups[world.nodes[0].address], ups[world.nodes[2].address]
    assert (good["accepted"], good["reason"]) == (True, None)
    assert good["weight"] == pytest.approx(100 / 300)
    assert bad["accepted"] is False and bad["reason"].startswith("non_finite:") and bad["weight"] == 0.0
    open_round = world.client.get("/rounds/4").json()
    assert open_round["metrics"] is None and open_round["updates"][0]["accepted"] is None


def test_unknown_round_is_404_with_reason(world):
    r = world.client.get("/rounds/99")
    assert r.status_code == 404
    assert r.json()["reason"] == "unknown_round" and r.json()["error"] == "NotFound"


@pytest.mark.parametrize("bad", ["-1", "abc", str(2**64)])
def test_invalid_round_id_is_422(world, bad):
    assert world.client.get(f"/rounds/{bad}").status_code == 422


def test_rounds_are_paginated_newest_first(world):
    page = world.client.get("/rounds", params={"limit": 2}).json()
    assert (page["total"], page["offset"], page["limit"]) == (4, 0, 2)
    assert [i["round_id"] for i in page["items"]] == [4, 3]
    page2 = world.client.get("/rounds", params={"offset": 2, "limit": 2}).json()
    assert [i["round_id"] for i in page2["items"]] == [2, 1]
    past = world.client.get("/rounds", params={"offset": 10}).json()
    assert past["items"] == [] and past["total"] == 4
    assert page2["items"][1]["metrics"] == {"rmse": 4.2, "max_abs_error": 10.1}
    default = world.client.get("/rounds").json()
    assert default["limit"] == 50 and len(default["items"]) == 4
    assert world.client.get("/rounds", params={"limit": 0}).status_code == 422
    assert world.client.get("/rounds", params={"offset": -1}).status_code == 422


def test_rounds_can_be_filtered_by_status(world):
    page = world.client.get("/rounds", params={"status": "finalized"}).json()
    assert [i["round_id"] for i in page["items"]] == [3, 1] and page["total"] == 2
    assert world.client.get("/rounds", params={"status": "bogus"}).status_code == 422


def test_open_round_shows_live_chain_state_before_the_index_catches_up(world):
    world.chain.submit_update(4, world.nodes[1].address, "0x" + "ce" * 32, 60)
    d = world.client.get("/rounds/4").json()
    assert d["commit_count"] == 2  # from the chain
    assert world.client.get("/rounds").json()["items"][0]["commit_count"] == 2
    world.indexer.sync()
    d = world.client.get("/rounds/4").json()
    assert d["commit_count"] == 2 and len(d["updates"]) == 2


def test_round_not_yet_indexed_is_served_from_the_chain(world):
    world.chain.submit_update(4, world.nodes[1].address, "0x" + "ce" * 32, 60)
    new = world.store.put(model_bytes(9.0))
    world.chain.warp_past(4)
    world.chain.finalize_round(4, new, "0x" + "ef" * 32, 2)
    world.model_hash = new
    rid = world.open_round()
    d = world.client.get(f"/rounds/{rid}").json()
    assert d["status"] == "open" and d["updates"] == [] and d["opened_block"] == world.chain.get_round(rid).opened_at
    info = world.chain.get_round(rid)
    assert (d["max_samples"], d["eligible_count"], d["seed"], d["skipped"]) == (
        info.max_samples, info.eligible_count, None, [])
    assert world.client.get("/rounds/4").json()["status"] == "finalized"  # overlay of a stale open row


def test_open_round_falls_back_to_the_index_when_the_chain_is_down(world):
    world.chain.down = True
    d = world.client.get("/rounds/4")
    assert d.status_code == 200 and d.json()["commit_count"] == 1
    assert world.client.get("/rounds").status_code == 200


def api_output(client) -> dict:
    out = {"list": client.get("/rounds", params={"limit": 500}).json(),
           "nodes": client.get("/nodes", params={"limit": 500}).json()}
    for item in out["list"]["items"]:
        out[item["round_id"]] = client.get(f"/rounds/{item['round_id']}").json()
    return out


def test_deleting_the_sqlite_file_and_syncing_reproduces_identical_output(world):
    before = api_output(world.client)
    assert len(before["list"]["items"]) == 4
    world.indexer.engine.dispose()
    db = world.tmp / "data" / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    assert not db.exists()
    idx = Indexer(world.chain, world.store, world.settings.resolved_db_url())
    idx.sync()
    app = create_app(world.settings, chain=world.chain, store=world.store, indexer=idx, background_sync=False)
    from fakes import TestClient

    assert api_output(TestClient(app)) == before


def test_rebuild_reproduces_identical_output(world):
    before = api_output(world.client)
    world.indexer.rebuild()
    assert api_output(world.client) == before


def test_sampled_round_shows_its_seed_and_rate(world):
    from fedchain.chain.types import RoundParams

    world.chain.submit_update(4, world.nodes[1].address, "0x" + "ce" * 32, 60)
    world.chain.warp_past(4)
    new = world.store.put(model_bytes(9.0))
    world.chain.finalize_round(4, new, "0x" + "ef" * 32, 2)
    rid = world.chain.open_round(new, "0x" + "c1" * 32, RoundParams(2**40, 1, 2**63 + 5, 2**63, 30))
    world.indexer.sync()
    info = world.chain.get_round(rid)
    for d in (world.client.get(f"/rounds/{rid}").json(), world.client.get("/rounds").json()["items"][0]):
        assert (d["selection_rate"], d["max_samples"], d["relay_cutoff"], d["deadline"]) == (
            2**63, 2**63 + 5, 30, 2**40)
        assert d["seed"] == info.seed and d["seed"] != "0x" + "00" * 32


def test_nodes_are_paginated_like_rounds(world):
    from fakes import account

    for i in range(10, 15):
        world.chain.admit_node(account(i).address)
    world.chain.remove_node(world.nodes[0].address)
    world.indexer.sync()
    everyone = world.client.get("/nodes").json()
    assert (everyone["total"], everyone["offset"], everyone["limit"]) == (8, 0, 100)
    order = [n["address"] for n in everyone["items"]]
    assert order[:3] == [n.address for n in world.nodes]  # order of joining
    page = world.client.get("/nodes", params={"offset": 2, "limit": 3}).json()
    assert [n["address"] for n in page["items"]] == order[2:5] and page["total"] == 8
    active = world.client.get("/nodes", params={"active": True, "limit": 2}).json()
    assert active["total"] == 7 and [n["address"] for n in active["items"]] == order[1:3]
    removed = world.client.get("/nodes", params={"active": False}).json()
    assert [n["address"] for n in removed["items"]] == [world.nodes[0].address]
    assert world.client.get("/nodes", params={"limit": 0}).status_code == 422
    assert world.client.get("/nodes", params={"limit": 501}).status_code == 422
    assert world.client.get("/nodes", params={"offset": -1}).status_code == 422


def test_rounds_after_a_reorg_equal_a_rebuilt_index(world):
    snap = world.chain.snapshot()
    world.chain.submit_update(4, world.nodes[1].address, "0x" + "ce" * 32, 60)
    world.chain.warp_past(4)
    world.chain.finalize_round(4, world.store.put(model_bytes(9.0)), "0x" + "ef" * 32, 2)
    world.indexer.sync()
    assert world.client.get("/rounds/4").json()["status"] == "finalized"
    world.chain.revert(snap)
    world.chain.submit_update(4, world.nodes[2].address, "0x" + "cf" * 32, 70)
    world.indexer.sync()
    after = api_output(world.client)
    assert after[4]["status"] == "open" and {u["node"] for u in after[4]["updates"]} == {
        world.nodes[0].address, world.nodes[2].address}
    world.indexer.rebuild()
    assert api_output(world.client) == after
