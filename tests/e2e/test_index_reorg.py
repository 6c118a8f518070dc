"""The index on a real anvil: reorganisations (evm_snapshot/evm_revert and anvil_reorg), the
confirmation depth, and a restarted chain with the contracts redeployed at the same addresses.

Each test starts its own anvil (no ``federation`` fixture) and compares the index it kept in step
through the reorg with a brand-new index of the same chain: rows, and the API's output."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.deploy import deploy
from fedchain.chain.types import RoundParams
from fedchain.devchain import free_port, start_anvil, stop_process
from fedchain.index import Indexer, Node, NodeEvent, Round, SkippedCommitment, SyncState, Update
from fedchain.index.models import Upload
from fedchain.settings import REPO_ROOT, Settings
from fedchain.store import FilesystemStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

GENESIS = "0x" + "11" * 32
CONFIG = "0x" + "c0" * 32
U64 = 2**64 - 1


class Anvil:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.deployments = tmp / "deployments"
        self.proc = start_anvil(self.port, log_path=tmp / "anvil.log")

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        r = requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                          timeout=30).json()
        assert "error" not in r, r
        return r["result"]

    def deploy(self) -> None:
        deploy(self.url, dev_account(0), repo_root=REPO_ROOT, deployments_dir=self.deployments, genesis_hash=GENESIS,
               admit=[dev_account(i).address for i in (1, 2, 3)], log=lambda m: None)

    def client(self, i: int = 0) -> ChainClient:
        """A fresh client (fresh nonce cache: a revert rewinds the accounts' nonces)."""
        return ChainClient.connect(self.url, deployments_dir=self.deployments, repo_root=REPO_ROOT,
                                   account=dev_account(i))

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def anvil(tmp_path):
    a = Anvil(tmp_path)
    try:
        a.deploy()
        yield a
    finally:
        a.stop()


def rows(idx: Indexer) -> dict[str, Any]:
    """Every row derived from the chain (checkpoints aside: they depend on when syncs ran)."""
    out: dict[str, Any] = {}
    with idx.session() as s:
        for model, order in ((Round, Round.round_id), (Update, (Update.round_id, Update.node)),
                             (Node, Node.address), (NodeEvent, (NodeEvent.block, NodeEvent.log_index)),
                             (SkippedCommitment, (SkippedCommitment.block, SkippedCommitment.log_index))):
            order = order if isinstance(order, tuple) else (order,)
            out[model.__tablename__] = [
                {c.name: getattr(r, c.name) for c in model.__table__.columns}
                for r in s.scalars(select(model).order_by(*order))
            ]
        st = s.get(SyncState, 1)
        out["state"] = (st.last_block, st.last_block_hash, st.deploy_block_hash, st.genesis_model_hash)
    return out


def api_output(idx: Indexer, chain: ChainClient, store: FilesystemStore, tmp: Path) -> dict[str, Any]:
    from fedchain.api import create_app

    settings = Settings(data_dir=tmp / "api", db_url="sqlite://")
    client = TestClient(create_app(settings, chain=chain, store=store, indexer=idx, background_sync=False))
    out: dict[str, Any] = {"rounds": client.get("/rounds", params={"limit": 500}).json(),
                           "nodes": client.get("/nodes", params={"limit": 500}).json()}
    for item in out["rounds"]["items"]:
        out[item["round_id"]] = client.get(f"/rounds/{item['round_id']}").json()
    return out


def assert_matches_fresh(idx: Indexer, chain: ChainClient, store: FilesystemStore, tmp: Path, name: str) -> None:
    new = Indexer(chain, store, f"sqlite:///{tmp / name}", confirmations=idx.confirmations)
    new.sync()
    assert rows(idx) == rows(new)
    assert api_output(idx, chain, store, tmp) == api_output(new, chain, store, tmp)


def assert_matches_chain(idx: Indexer, chain: ChainClient) -> None:
    """The index agrees with the contract's own views (at the head)."""
    with idx.session() as s:
        assert [r.round_id for r in s.scalars(select(Round).order_by(Round.round_id))] == list(
            range(1, chain.current_round_id() + 1))
        for r in s.scalars(select(Round)):
            info = chain.get_round(r.round_id)
            assert (r.status, r.commit_count, r.max_samples, r.eligible_count, r.deadline) == (
                info.status.label, info.commit_count, info.max_samples, info.eligible_count, info.deadline)
            assert {(u.node, u.update_hash, u.num_samples) for u in r.updates} == {
                (c.node, c.update_hash, c.num_samples) for c in chain.commitments(r.round_id)}
        assert {n.address for n in s.scalars(select(Node).where(Node.active.is_(True)))} == {
            dev_account(i).address for i in range(1, 10) if chain.is_active_node(dev_account(i).address)}


def open_round(agg: ChainClient, max_samples: int = U64, config: str = CONFIG) -> int:
    deadline = agg.block_timestamp() + 3600
    rid, _ = agg.open_round(GENESIS, config, RoundParams(deadline=deadline, min_updates=1, max_samples=max_samples))
    return rid


def test_evm_revert_then_other_transactions(anvil, tmp_path):
    agg = anvil.client(0)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    idx = Indexer(agg, store, f"sqlite:///{tmp_path / 'index.sqlite'}")
    idx.sync()
    snap = anvil.rpc("evm_snapshot")
    # branch A: a node joins, round 1 opens, two commitments (one with the largest uint64)
    agg.admit_node(dev_account(4).address, b"\x04" * 33)
    rid = open_round(agg)
    anvil.client(1).submit_update(rid, "0x" + "a1" * 32, U64)
    anvil.client(2).submit_update(rid, "0x" + "a2" * 32, 12)
    agg.remove_node(dev_account(3).address)
    idx.sync()
    with idx.session() as s:
        assert s.get(Round, rid).commit_count == 2
        assert {u.num_samples for u in s.get(Round, rid).updates} == {U64, 12}
        assert s.get(Node, dev_account(4).address) is not None
        s.add(Upload(round_id=rid, node=dev_account(1).address, blob_hash="0x" + "a1" * 32, size=3,
                     received_at=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)))
        s.commit()
    branch_a = rows(idx)
    # the reorg: back to the snapshot, then different transactions (and a longer chain)
    assert anvil.rpc("evm_revert", [snap]) is True
    agg = anvil.client(0)
    rid_b = open_round(agg, max_samples=1000, config="0x" + "c1" * 32)
    assert rid_b == rid
    anvil.client(3).submit_update(rid_b, "0x" + "b3" * 32, 999)
    for _ in range(6):
        anvil.rpc("evm_mine")
    assert agg.block_number() > branch_a["state"][0]
    idx.sync()
    assert idx.reorgs == 1
    with idx.session() as s:
        r = s.get(Round, rid_b)
        assert (r.config_hash, r.max_samples, r.commit_count) == ("0x" + "c1" * 32, 1000, 1)
        assert [u.node for u in r.updates] == [dev_account(3).address]
        assert s.get(Node, dev_account(4).address) is None and s.get(Node, dev_account(3).address).active
    assert idx.uploads_for(rid, dev_account(1).address) == ["0x" + "a1" * 32]  # not on chain: kept
    assert_matches_chain(idx, agg)
    assert_matches_fresh(idx, agg, store, tmp_path, "fresh.sqlite")


def test_evm_revert_to_a_shorter_chain(anvil, tmp_path):
    agg = anvil.client(0)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    idx = Indexer(agg, store, f"sqlite:///{tmp_path / 'index.sqlite'}", batch_blocks=1)
    rid = open_round(agg)
    idx.sync()
    snap = anvil.rpc("evm_snapshot")
    anvil.client(1).submit_update(rid, "0x" + "a1" * 32, 5)
    anvil.client(2).submit_update(rid, "0x" + "a2" * 32, 6)
    idx.sync()
    anvil.rpc("evm_revert", [snap])
    assert agg.block_number() < idx.indexed_block()
    idx.sync()
    assert idx.reorgs == 1 and idx.indexed_block() == agg.block_number()
    with idx.session() as s:
        assert s.get(Round, rid).commit_count == 0 and s.get(Round, rid).updates == []
    assert_matches_chain(idx, agg)
    assert_matches_fresh(idx, agg, store, tmp_path, "fresh.sqlite")


def test_anvil_reorg_replaces_the_newest_blocks(anvil, tmp_path):
    agg = anvil.client(0)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    idx = Indexer(agg, store, f"sqlite:///{tmp_path / 'index.sqlite'}", batch_blocks=2)
    rid = open_round(agg)
    anvil.client(1).submit_update(rid, "0x" + "a1" * 32, 5)
    anvil.client(2).submit_update(rid, "0x" + "a2" * 32, 6)
    idx.sync()
    head = agg.block_number()
    # replace the last two blocks (both commitments) with two blocks holding node 3's commitment
    data = agg.rounds.functions.submitUpdate(rid, bytes.fromhex("b3" * 32), 77)._encode_transaction_data()
    tx = {"from": dev_account(3).address, "to": agg.rounds_address, "data": data, "gas": hex(200_000)}
    anvil.rpc("anvil_reorg", [2, [[tx, 1]]])
    assert agg.block_number() == head  # same height, other blocks
    idx.sync()
    assert idx.reorgs == 1
    with idx.session() as s:
        assert [(u.node, u.num_samples) for u in s.get(Round, rid).updates] == [(dev_account(3).address, 77)]
    assert_matches_chain(idx, agg)
    assert_matches_fresh(idx, agg, store, tmp_path, "fresh.sqlite")


def test_confirmation_depth_keeps_the_newest_blocks_out(anvil, tmp_path):
    agg = anvil.client(0)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    idx = Indexer(agg, store, f"sqlite:///{tmp_path / 'index.sqlite'}", confirmations=2)
    rid = open_round(agg)
    anvil.client(1).submit_update(rid, "0x" + "a1" * 32, 5)
    head = agg.block_number()
    idx.sync()
    assert idx.indexed_block() == head - 2
    with idx.session() as s:
        assert s.get(Round, rid) is None  # opened in block head-1
    # a reorg of the unconfirmed blocks never reaches the index
    anvil.rpc("anvil_reorg", [2, []])
    idx.sync()
    assert idx.reorgs == 0
    anvil.rpc("evm_mine")
    anvil.rpc("evm_mine")
    idx.sync()
    assert idx.indexed_block() == head and idx.reorgs == 0
    with idx.session() as s:
        assert s.get(Round, rid) is None  # the reorg dropped the round before it was confirmed
    agg = anvil.client(0)  # fresh nonce: the reorg dropped our openRound
    idx.chain = agg
    rid = open_round(agg)
    for _ in range(2):
        anvil.rpc("evm_mine")
    idx.sync()
    with idx.session() as s:
        assert s.get(Round, rid) is not None
    assert_matches_fresh(idx, agg, store, tmp_path, "fresh.sqlite")


def test_restarted_chain_redeployed_at_the_same_addresses(tmp_path):
    a = Anvil(tmp_path)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    try:
        a.deploy()
        agg = a.client(0)
        for _ in range(3):
            rid = open_round(agg)
            anvil_node = a.client(1)
            anvil_node.submit_update(rid, "0x" + f"{rid:02x}" * 32, 5)
            a.rpc("evm_increaseTime", [4000])  # past deadline + grace: the next openRound expires it
            for _ in range(2):
                a.rpc("evm_mine")
        idx = Indexer(agg, store, db)
        idx.sync()
        old = (agg.rounds_address, agg.deploy_block, agg.block_hash(agg.deploy_block), idx.indexed_block())
        ts = agg.block_timestamp()
    finally:
        a.stop()
    # the same port, a new chain: the contract lands at the same address in the same block
    b = Anvil.__new__(Anvil)
    b.tmp, b.port, b.url, b.deployments = tmp_path, a.port, a.url, a.deployments
    b.proc = start_anvil(b.port, log_path=tmp_path / "anvil2.log")
    try:
        b.rpc("evm_setNextBlockTimestamp", [ts + 10_000])
        b.deploy()
        agg = b.client(0)
        rid = open_round(agg)
        assert (agg.rounds_address, agg.deploy_block) == old[:2] and agg.block_hash(agg.deploy_block) != old[2]
        assert agg.block_number() < old[3]
        idx = Indexer(agg, store, db)  # the aggregator restarted on its old data folder
        idx.sync()
        assert idx.restarts == 1 and idx.notice.startswith("chain restarted: index rebuilt")
        assert idx.indexed_block() == agg.block_number()
        with idx.session() as s:
            assert [r.round_id for r in s.scalars(select(Round))] == [rid]
        assert_matches_fresh(idx, agg, store, tmp_path, "fresh.sqlite")
        from fedchain.api import create_app

        app = create_app(Settings(data_dir=tmp_path / "api", db_url="sqlite://"), chain=agg, store=store,
                         indexer=idx, background_sync=False)
        h = TestClient(app).get("/health").json()
        assert h["status"] == "ok" and "chain restarted: index rebuilt" in h["detail"]
        assert h["indexed_block"] == h["block"]
    finally:
        b.stop()
