"""A deterministic chain history for the index tests (the same events in every process that
builds it), and the index's derived rows as plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from fakes import account, make_world
from fedchain.index import Indexer, Node, NodeEvent, Round, SkippedCommitment, SyncState, Update

U64 = 2**64 - 1


def build(tmp: Path, rounds: int = 6, *, leave_open: bool = True) -> Any:
    """A FakeChain world: ``rounds`` finalized rounds (accepted and rejected updates), a node
    removed, one rotated, one admitted late, and (``leave_open``) an open round with a
    commitment of 2^64-1 samples."""
    w = make_world(tmp, open_round=False, n_nodes=4)
    for i in range(rounds):
        w.run_round([True, i % 2 == 0, True, i % 3 == 0][: 2 + i % 3])
    w.chain.remove_node(w.nodes[3].address)
    w.chain.update_node(w.nodes[1].address, b"\x99" * 33, "0x" + "77" * 32)
    w.chain.admit_node(account(20).address)
    if leave_open:
        rid = w.open_round(min_updates=2)
        w.chain.submit_update(rid, w.nodes[0].address, "0x" + "cd" * 32, U64)
    return w


def snapshot(indexer: Indexer) -> dict:
    """Every row derived from the chain (not uploads), as plain data."""
    def rows(s, model, *order):  # noqa: ANN001, ANN202
        return [{c.name: getattr(r, c.name) for c in model.__table__.columns}
                for r in s.scalars(select(model).order_by(*order))]

    with indexer.session() as s:
        st = s.get(SyncState, 1)
        return {
            "rounds": rows(s, Round, Round.round_id),
            "updates": rows(s, Update, Update.round_id, Update.node),
            "nodes": rows(s, Node, Node.address),
            "skipped": rows(s, SkippedCommitment, SkippedCommitment.block, SkippedCommitment.log_index),
            "node_events": rows(s, NodeEvent, NodeEvent.block, NodeEvent.log_index),
            "state": None if st is None else (st.last_block, st.last_block_hash, st.chain_id, st.rounds_address,
                                              st.genesis_model_hash, st.deploy_block_hash),
        }


def fresh_snapshot(chain: Any, store: Any, path: Path) -> dict:
    """What an index of ``chain`` must hold: a new SQLite index, synced once."""
    idx = Indexer(chain, store, f"sqlite:///{path}")
    idx.sync()
    snap = snapshot(idx)
    idx.engine.dispose()
    return snap
