"""The index schema (SQLAlchemy 2, typed Declarative).

Every table except ``uploads`` is derived from contract events plus stored blobs (round reports),
so the whole database can be deleted and rebuilt from the chain (:meth:`Indexer.rebuild`).

``uploads`` records which blob each node PUT to this aggregator for a round. It is *not* on the
chain (nodes commit the hash on-chain separately), so a rebuild loses it. That is harmless: it only
serves the duplicate check of the round that is open now ("one blob per node per round"), the
blobs themselves stay in the store, and the on-chain commitment is what the aggregator uses. A node
that re-uploads after a rebuild is checked against its on-chain commitment instead.

Hashes are stored as ``0x`` + 64 lowercase hex, addresses checksummed, public keys as ``0x`` hex.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

HASH = String(66)
ADDRESS = String(42)

ROUND_OPEN = "open"
ROUND_FINALIZED = "finalized"
ROUND_EXPIRED = "expired"


class Base(DeclarativeBase):
    pass


class Round(Base):
    __tablename__ = "rounds"

    round_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | finalized | expired
    base_model_hash: Mapped[str] = mapped_column(HASH)
    config_hash: Mapped[str] = mapped_column(HASH)
    global_model_hash: Mapped[str | None] = mapped_column(HASH)
    report_hash: Mapped[str | None] = mapped_column(HASH)
    deadline: Mapped[int] = mapped_column(BigInteger)
    min_updates: Mapped[int] = mapped_column(Integer)
    commit_count: Mapped[int] = mapped_column(Integer, default=0)
    accepted_count: Mapped[int] = mapped_column(Integer, default=0)
    opened_block: Mapped[int] = mapped_column(BigInteger)
    opened_tx: Mapped[str] = mapped_column(HASH)
    open_gas_used: Mapped[int | None] = mapped_column(BigInteger)
    closed_block: Mapped[int | None] = mapped_column(BigInteger)
    closed_tx: Mapped[str | None] = mapped_column(HASH)
    close_gas_used: Mapped[int | None] = mapped_column(BigInteger)
    expired_by: Mapped[str | None] = mapped_column(ADDRESS)
    #: The report's ``metrics`` once it has been merged; None before.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The report's ``strategy`` ({"name", "params"}) once merged.
    strategy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: True once the report blob was read (or found unusable; see report_error).
    report_merged: Mapped[bool] = mapped_column(default=False)
    #: Why the report could not be merged (it is malformed or disagrees with the chain).
    report_error: Mapped[str | None] = mapped_column(String(500))

    updates: Mapped[list[Update]] = relationship(
        back_populates="round", order_by="Update.node", cascade="all, delete-orphan"
    )


class Update(Base):
    __tablename__ = "updates"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    node: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    update_hash: Mapped[str] = mapped_column(HASH)
    num_samples: Mapped[int] = mapped_column(BigInteger)
    block: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(HASH)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    #: From the round report: None until the report exists (and while the round is open).
    accepted: Mapped[bool | None] = mapped_column(default=None)
    reason: Mapped[str | None] = mapped_column(String(500))
    weight: Mapped[float | None] = mapped_column(default=None)

    round: Mapped[Round] = relationship(back_populates="updates")


class Node(Base):
    __tablename__ = "nodes"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    active: Mapped[bool]
    joined_block: Mapped[int] = mapped_column(BigInteger)
    metadata_hash: Mapped[str] = mapped_column(HASH)
    public_key: Mapped[str] = mapped_column(String)  # 0x hex, "0x" when empty
    removed_block: Mapped[int | None] = mapped_column(BigInteger)


class Upload(Base):
    """A blob a node PUT for a round. Not derivable from the chain: lost on rebuild (see module doc)."""

    __tablename__ = "uploads"

    round_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    blob_hash: Mapped[str] = mapped_column(HASH)
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SyncState(Base):
    """One row: how far the index has read, and which deployment it describes."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    rounds_address: Mapped[str] = mapped_column(ADDRESS)
    registry_address: Mapped[str] = mapped_column(ADDRESS)
    #: Last block whose events are in the index.
    last_block: Mapped[int] = mapped_column(BigInteger)
    genesis_model_hash: Mapped[str | None] = mapped_column(HASH)
