"""The index schema (SQLAlchemy 2, typed Declarative).

Every table except ``uploads`` is derived from contract events plus stored blobs (round reports),
so the whole database can be deleted and rebuilt from the chain (:meth:`Indexer.rebuild`).

``uploads`` records which blob each node PUT to this aggregator for a round. It is *not* on the
chain (nodes commit the hash on-chain separately), so a rebuild loses it. That is harmless: it only
serves the duplicate check of the round that is open now ("one blob per node per round"), the
blobs themselves stay in the store, and the on-chain commitment is what the aggregator uses. A node
that re-uploads after a rebuild is checked against its on-chain commitment instead.

Hashes are stored as ``0x`` + 64 lowercase hex, addresses checksummed, public keys as ``0x`` hex.

**Every on-chain integer fits its column.** uint64 and uint256 values (sample counts, deadlines,
``maxSamples``, ``selectionRate``) can exceed a signed 64-bit SQL integer (SQLite INTEGER,
PostgreSQL BIGINT), so they are stored as :class:`UInt`: a decimal string zero-padded to 78 digits
(the width of 2^256-1), which is exact on every backend and sorts like the number. uint32 values
(counters, ``relayCutoff``, ``minUpdates``) and block numbers, gas figures and round ids (a uint32
counter in the contract) are BIGINT, which holds them on every backend.

**Reorganisations.** Every row records the block of the event it came from (``opened_block``,
``closed_block``, ``Update.block``, ``SkippedCommitment.block``, ``NodeEvent.block``,
``SyncState.genesis_block``), so :meth:`fedchain.index.Indexer` can rewind everything above a fork
point. Node state is a fold over ``node_events`` (admitted/removed/updated), so a node whose later
events are rewound is recomputed from the ones that remain. ``block_checkpoints`` keeps the hash of
the last block of recent sync batches, so the fork point is found without rescanning the chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

HASH = String(66)
ADDRESS = String(42)

#: The version of what the rows mean. Columns and tables change through Alembic revisions
#: (fedchain/index/migrations/versions); bump this as well when existing rows must be re-derived:
#: an index whose rows were written under another version is emptied and rebuilt (it is a cache).
SCHEMA_VERSION = 2


class UInt(TypeDecorator[int]):
    """A non-negative integer below 2^256, stored exactly as a zero-padded decimal string.

    SQLite's INTEGER and PostgreSQL's BIGINT stop at 2^63-1 (and SQLite turns larger NUMERIC
    values into floats), while a uint64 sample count reaches 2^64-1. Padding to a fixed width
    keeps ``ORDER BY`` and comparisons numeric."""

    impl = String(78)
    cache_ok = True
    WIDTH = 78
    MAX = 2**256 - 1

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        v = int(value)
        if not 0 <= v <= self.MAX:
            raise ValueError(f"{v} is not an unsigned 256-bit integer")
        return str(v).zfill(self.WIDTH)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

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
    deadline: Mapped[int] = mapped_column(UInt)  # uint64, unix seconds
    min_updates: Mapped[int] = mapped_column(BigInteger)  # uint32
    #: RoundOpened.params (uint64, uint64, uint32) and the eligible snapshot (uint32), seed (bytes32).
    max_samples: Mapped[int] = mapped_column(UInt)
    selection_rate: Mapped[int] = mapped_column(UInt, default=0)
    relay_cutoff: Mapped[int] = mapped_column(BigInteger, default=0)
    eligible_count: Mapped[int] = mapped_column(BigInteger, default=0)
    seed: Mapped[str | None] = mapped_column(HASH)  # None when the round is not sampled (zero seed)
    commit_count: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted_count: Mapped[int] = mapped_column(BigInteger, default=0)
    opened_block: Mapped[int] = mapped_column(BigInteger, index=True)
    opened_tx: Mapped[str] = mapped_column(HASH)
    open_gas_used: Mapped[int | None] = mapped_column(BigInteger)
    closed_block: Mapped[int | None] = mapped_column(BigInteger, index=True)
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
    skipped: Mapped[list[SkippedCommitment]] = relationship(
        back_populates="round",
        order_by="(SkippedCommitment.block, SkippedCommitment.log_index)",
        cascade="all, delete-orphan",
    )


class Update(Base):
    __tablename__ = "updates"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    node: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    update_hash: Mapped[str] = mapped_column(HASH)
    num_samples: Mapped[int] = mapped_column(UInt)  # uint64
    block: Mapped[int] = mapped_column(BigInteger, index=True)
    tx_hash: Mapped[str] = mapped_column(HASH)
    #: Gas of the whole transaction: updates relayed in one submitBatch share the figure (and tx_hash).
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    #: From the round report: None until the report exists (and while the round is open).
    accepted: Mapped[bool | None] = mapped_column(default=None)
    reason: Mapped[str | None] = mapped_column(String(500))
    weight: Mapped[float | None] = mapped_column(default=None)

    round: Mapped[Round] = relationship(back_populates="updates")


class SkippedCommitment(Base):
    """A relayed commitment ``submitBatch`` skipped (``CommitmentSkipped``): who, and why."""

    __tablename__ = "skipped_commitments"

    tx_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), index=True)
    #: The recovered signer; the zero address when the signature did not recover.
    node: Mapped[str] = mapped_column(ADDRESS)
    reason_code: Mapped[int] = mapped_column(Integer)  # uint8 SkipReason
    block: Mapped[int] = mapped_column(BigInteger, index=True)

    round: Mapped[Round] = relationship(back_populates="skipped")


class NodeEvent(Base):
    """One NodeAdmitted / NodeRemoved / NodeUpdated event; ``nodes`` is their fold, per node."""

    __tablename__ = "node_events"

    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(ADDRESS, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # admitted | removed | updated
    metadata_hash: Mapped[str | None] = mapped_column(HASH)
    public_key: Mapped[str | None] = mapped_column(String)


class BlockCheckpoint(Base):
    """The hash of a block the index has read up to (the end of a sync batch). The newest ones are
    kept; the highest one the chain still agrees with is where a rewind after a reorg stops."""

    __tablename__ = "block_checkpoints"

    block: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    block_hash: Mapped[str] = mapped_column(HASH)


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
    #: Last block whose events are in the index, and its hash when it was indexed.
    last_block: Mapped[int] = mapped_column(BigInteger)
    last_block_hash: Mapped[str | None] = mapped_column(HASH)
    #: Hash of the deployment block: another hash means another chain (restarted, redeployed at the
    #: same addresses), and the index is wiped and rebuilt.
    deploy_block_hash: Mapped[str | None] = mapped_column(HASH)
    genesis_model_hash: Mapped[str | None] = mapped_column(HASH)
    genesis_block: Mapped[int | None] = mapped_column(BigInteger)
    schema_version: Mapped[int] = mapped_column(Integer, default=SCHEMA_VERSION)
