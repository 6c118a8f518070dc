"""Chain events (+ round report blobs) into the SQL index that the API serves.

The index is a cache of the chain: :meth:`Indexer.sync` reads every fedchain event after the last
indexed block, in (block, log index) order, and applies it; the new rows and the new ``last_block``
are committed in one transaction, so a crash mid-way repeats the batch and every handler is
idempotent. Gas figures come from transaction receipts. When a round is finalized and its report
blob is in the store, each update's accepted/reason/weight and the round's metrics are filled in
from the report (read only if its stored size is within ``max_json_bytes``); a report that is not in
the store yet is retried on every later sync, a malformed one is recorded in ``report_error``.

**Confirmation depth.** Only blocks at least ``confirmations`` below the head are indexed
(``FEDCHAIN_CONFIRMATIONS``; 0 suits anvil, a real chain wants e.g. 12), so a short reorganisation
of the newest blocks never reaches the index.

**Reorganisations.** After each batch the hash of its last block is recorded (``SyncState.
last_block_hash`` and a ``block_checkpoints`` row; the newest :data:`CHECKPOINTS` are kept). Each
sync first asks the chain for the hash of the last indexed block: a block hash commits to all of
its ancestors, so if it still matches, everything indexed is still canonical (one RPC call). If it
differs, or the block is gone (``evm_revert``, a shorter fork), the fork point is the highest
checkpoint the chain still agrees with (a binary search over the checkpoints), or the block before
the deployment when none does. Everything derived from later blocks is deleted (rounds opened
there, commitments, skipped commitments, node events, with nodes re-folded from the events left,
round closes and the report data merged for them, the genesis model), and the sync re-reads the
chain from the fork point. ``uploads`` (not from the chain) are kept. One warning line per reorg;
:attr:`Indexer.reorgs` counts them. Each batch also re-reads its end block's hash after fetching
its events, and stops (to be redone by the next sync) if the chain moved under it.

**Another chain behind the same addresses.** ``SyncState.deploy_block_hash`` records the
deployment block's hash. If the chain's hash for that block differs or the block is missing (the
chain was restarted and the contracts redeployed at the same addresses), the index is wiped,
uploads included, and rebuilt, with a warning; :attr:`Indexer.notice` says so ("chain restarted:
index rebuilt ...") for ``/health``. The same happens if the chain id or the addresses differ.
:meth:`Indexer.rebuild` wipes and rebuilds on demand.

**Schema.** Alembic revisions (:mod:`fedchain.index.migrations`) create and upgrade the tables; an
indexer checks the database's revision before anything else and refuses (ConfigError) one it
cannot use. **Several processes on one database** (PostgreSQL; docs/scale.md): every write
transaction first takes a transaction-level advisory lock (:data:`SYNC_LOCK_KEY`) and re-reads the
state it was computed from, so a batch another indexer already applied (or a reorg it already
rewound) is skipped rather than applied twice; the chain is only read outside the lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils import is_address
from sqlalchemy import Engine, create_engine, delete, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fedchain.address import to_checksum_address
from fedchain.chain.types import ChainReader, EventRecord, RoundParams, SkipReason
from fedchain.codec import decode_json
from fedchain.errors import BlobNotFound, ConfigError, FedchainError, NotFound
from fedchain.index.models import (
    ROUND_EXPIRED,
    ROUND_FINALIZED,
    ROUND_OPEN,
    SCHEMA_VERSION,
    Base,
    BlockCheckpoint,
    Node,
    NodeEvent,
    Round,
    SkippedCommitment,
    SyncState,
    Update,
    Upload,
)
from fedchain.store import BlobStore, StoreUnavailable

log = logging.getLogger(__name__)

#: Blocks fetched and committed per transaction.
BATCH_BLOCKS = 10_000
#: Block checkpoints kept for finding a fork point (older ones are pruned; a reorg deeper than all
#: of them rewinds to the deployment block, which is correct, only slower).
CHECKPOINTS = 256
ZERO_HASH = "0x" + "00" * 32
#: Key of the PostgreSQL transaction-level advisory lock every index write takes first
#: (``pg_advisory_xact_lock``): indexers of several processes on one database write one at a time.
SYNC_LOCK_KEY = 0x6665_6463_7379_6E63  # "fedcsync"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, WAL mode and cross-thread use.
    A bare ``postgresql://`` URL uses psycopg 3 (``postgresql+psycopg://``), the driver fedchain pins."""
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise ConfigError(f"the index database URL {url!r} is not an SQLAlchemy URL",
                          hint="FEDCHAIN_DB_URL looks like sqlite:////path/index.sqlite or "
                               "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB") from None
    if u.get_backend_name() != "sqlite":
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        try:
            return create_engine(u, pool_pre_ping=True)
        except ImportError as exc:  # the URL names a driver that is not installed
            raise ConfigError(f"no database driver for {u.drivername!r}: {exc}",
                              hint="for PostgreSQL use postgresql+psycopg:// (psycopg 3, pinned in requirements.txt)") from None
    database = u.database or ""
    if database in ("", ":memory:"):
        return create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def _hash(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def _opt_hash(value: Any) -> str | None:
    h = _hash(value) if value is not None else None
    return None if h in (None, ZERO_HASH) else h


def _hexbytes(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    s = str(value or "0x").lower()
    return s if s.startswith("0x") else "0x" + s


def _addr(value: Any) -> str:
    return to_checksum_address(value)


def round_params(value: Any) -> RoundParams:
    """``RoundOpened.params`` as web3 decodes it (a tuple, or a mapping of component names: web3's
    ``AttributeDict`` is a Mapping, not a dict)."""
    if isinstance(value, Mapping):
        return RoundParams(deadline=int(value["deadline"]), min_updates=int(value["minUpdates"]),
                           max_samples=int(value["maxSamples"]), selection_rate=int(value["selectionRate"]),
                           relay_cutoff=int(value["relayCutoff"]), threshold=int(value.get("threshold", 0)),
                           unmask_window=int(value.get("unmaskWindow", 0)),
                           close_window=int(value.get("closeWindow", 0)))
    values = [int(v) for v in value]
    # Protocol v2 appended threshold and unmaskWindow (secure rounds), then closeWindow; older
    # events have five or seven fields.
    deadline, min_updates, max_samples, rate, cutoff, threshold, window, close = (values + [0, 0, 0])[:8]
    return RoundParams(deadline=deadline, min_updates=min_updates, max_samples=max_samples, selection_rate=rate,
                       relay_cutoff=cutoff, threshold=threshold, unmask_window=window, close_window=close)


def skip_reason_label(code: int) -> str:
    """``CommitmentSkipped.reason`` as a lowercase name (``invalid_signature``...); unknown codes
    (a newer contract) as ``unknown_<n>``."""
    try:
        return SkipReason(int(code)).name.lower()
    except ValueError:
        return f"unknown_{int(code)}"


def _finite(value: Any, where: str) -> Any:
    """``value`` unchanged if it holds no NaN/inf (json.loads turns 1e400 into inf, which the API
    could not serialise); ReportError otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ReportError(f"report's {where} is not finite")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")
    return value


class ReportError(ValueError):
    """A round report that is malformed or disagrees with the chain."""


class Indexer:
    """Keeps the SQL index in step with the chain. Thread-safe: one sync at a time."""

    def __init__(
        self,
        chain: ChainReader,
        store: BlobStore,
        engine_or_url: Engine | str,
        *,
        max_json_bytes: int = 1024 * 1024,
        batch_blocks: int = BATCH_BLOCKS,
        confirmations: int = 0,
        checkpoints: int = CHECKPOINTS,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self.chain = chain
        self.store = store
        self.engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.max_json_bytes = max_json_bytes
        self.batch_blocks = batch_blocks
        #: Blocks below the head that are not indexed yet (they may still be reorganised away).
        self.confirmations = int(confirmations)
        self.checkpoints = max(1, int(checkpoints))
        self._lock = threading.RLock()
        #: Message of the last failed sync (None after a good one); /health reports it.
        self.last_error: str | None = None
        #: time.time() of the last successful sync.
        self.last_sync_at: float | None = None
        #: Reorganisations seen (and rewound) since this process started.
        self.reorgs = 0
        #: Times the index was wiped because the chain behind the addresses changed.
        self.restarts = 0
        #: Called with the events of each batch once it is committed (the API's round events).
        self.listeners: list[Callable[[list[EventRecord]], None]] = []
        #: The last reorg's fork point and the block whose hash no longer matched, if any.
        self.last_reorg: tuple[int, int] | None = None
        #: A standing remark for /health, e.g. "chain restarted: index rebuilt ..." (None: nothing).
        self.notice: str | None = None
        self._ensure_schema()

    # -- public --------------------------------------------------------------------------------
    @property
    def notices(self) -> list[str]:
        """What /health should mention although nothing is wrong now: a chain restart that wiped
        the index, and the reorganisations it rewound (count, last fork point)."""
        out = [self.notice] if self.notice else []
        if self.reorgs and self.last_reorg is not None:
            out.append(f"index rewound {self.reorgs} chain reorganisation(s) (last: from block "
                       f"{self.last_reorg[1]} back to block {self.last_reorg[0]})")
        return out

    def session(self) -> Session:
        return self.Session()

    def indexed_block(self) -> int | None:
        """Last block whose events are in the index (None before the first sync)."""
        with self.Session() as s:
            st = s.get(SyncState, 1)
            return None if st is None else st.last_block

    def uploads_for(self, round_id: int, node: str) -> list[str]:
        """Blob hashes ``node`` uploaded to this aggregator for ``round_id`` (at most one; empty
        after a rebuild, see :class:`fedchain.index.models.Upload`)."""
        with self.Session() as s:
            u = s.get(Upload, (int(round_id), _addr(node)))
            return [] if u is None else [u.blob_hash]

    def sync(self) -> int:
        """Index every event up to ``head - confirmations``; returns how many events were applied."""
        with self._lock:
            try:
                n = self._sync()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.last_error = None
            self.last_sync_at = time.time()
            return n

    def rebuild(self) -> int:
        """Empty every table (uploads included) and sync again from the deploy block."""
        with self._lock:
            with self._write() as s:
                self._wipe(s)
            return self.sync()

    # -- internals -----------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction. On PostgreSQL it first takes the index's transaction-level
        advisory lock, so that the write transactions of every indexer on the database (other
        processes, other replicas) run one at a time; each re-reads what it depends on after
        taking it. SQLite serialises writers itself (one process per file is the supported use)."""
        with self.Session.begin() as s:
            if self.engine.dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SYNC_LOCK_KEY})
            yield s

    @staticmethod
    def _wipe(s: Session) -> None:
        """Delete every row of every index table (the schema and its revision stay)."""
        for table in reversed(Base.metadata.sorted_tables):
            s.execute(table.delete())

    def _ensure_schema(self) -> None:
        """Check the database's schema revision and upgrade it (:func:`fedchain.index.migrations.
        ensure_schema`: ConfigError for a database this version cannot use); then an index whose
        rows were written under another :data:`SCHEMA_VERSION` is emptied, to be rebuilt."""
        from fedchain.index.migrations import ensure_schema

        ensure_schema(self.engine)
        with self.Session() as s:
            st = s.get(SyncState, 1)
            stale = st is not None and st.schema_version != SCHEMA_VERSION
        if stale:
            log.warning("the index at %s was written by index version %s, not %s: rebuilding it from the chain",
                        self.engine.url, st.schema_version, SCHEMA_VERSION)
            with self._write() as s:
                st = s.get(SyncState, 1)
                if st is not None and st.schema_version != SCHEMA_VERSION:
                    self._wipe(s)

    def _deployment(self) -> tuple[int, str, str]:
        return (
            int(self.chain.chain_id),
            _addr(self.chain.rounds_address),
            _addr(self.chain.registry_address),
        )

    def _block_hash(self, block: int) -> str | None:
        fn = getattr(self.chain, "block_hash", None)
        if fn is None:  # a reader without block hashes: no reorg detection
            return None
        h = fn(int(block))
        return None if h is None else _hash(h)

    @property
    def _tracks_hashes(self) -> bool:
        return getattr(self.chain, "block_hash", None) is not None

    def _ensure_state(self) -> SyncState:
        """The sync state, after wiping an index that describes another deployment."""
        chain_id, rounds, registry = self._deployment()
        ours = (chain_id, rounds, registry)
        with self.Session() as s:
            st = s.get(SyncState, 1)
            if st is not None and (st.chain_id, st.rounds_address, st.registry_address) == ours:
                return st
        deploy = int(self.chain.deploy_block)
        start = max(0, deploy - 1)
        deploy_hash = self._block_hash(deploy)
        if self._tracks_hashes and deploy_hash is None:
            raise FedchainError(
                f"the chain has no block {deploy}, where the deployment says the contracts were deployed",
                hint="is the RPC URL the chain the contracts were deployed on? deploy again if it was restarted",
            )
        start_hash = self._block_hash(start)
        with self._write() as s:
            st = s.get(SyncState, 1)  # again, under the lock: another indexer may have set it up meanwhile
            if st is not None and (st.chain_id, st.rounds_address, st.registry_address) == ours:
                return st
            if st is not None:
                log.warning(
                    "index describes chain %s / %s, not %s / %s: rebuilding it",
                    st.chain_id, st.rounds_address, chain_id, rounds,
                )
                self._wipe(s)
            st = SyncState(
                id=1, chain_id=chain_id, rounds_address=rounds, registry_address=registry, last_block=start,
                last_block_hash=start_hash, deploy_block_hash=deploy_hash, schema_version=SCHEMA_VERSION,
            )
            s.add(st)
        return st

    def _state(self) -> SyncState | None:
        with self.Session() as s:
            return s.get(SyncState, 1)

    def _check_chain(self, st: SyncState) -> SyncState:
        """Rewind after a reorg, or wipe after a chain restart; the (possibly new) state."""
        if not self._tracks_hashes or st.last_block_hash is None:
            return st
        now = self._block_hash(st.last_block)
        if now == st.last_block_hash:
            return st  # a block hash commits to every ancestor: all indexed blocks are unchanged
        deploy = int(self.chain.deploy_block)
        deploy_now = self._block_hash(deploy)
        seen = (st.last_block, st.last_block_hash, st.deploy_block_hash)
        if deploy_now != st.deploy_block_hash:
            with self._write() as s:
                cur = s.get(SyncState, 1)
                # Under the lock: unless another indexer on this database already rebuilt it.
                if cur is not None and cur.deploy_block_hash == seen[2]:
                    self.restarts += 1
                    self.notice = (
                        f"chain restarted: index rebuilt (the hash of deployment block {deploy} changed"
                        f"{'' if deploy_now else ': the block is gone'}; {st.last_block - deploy + 1} indexed blocks dropped)"
                    )
                    log.warning("%s", self.notice)
                    self._wipe(s)
            return self._ensure_state()
        fork, fork_hash = self._fork_point(st)
        if self._rewind(fork, fork_hash, expect=seen):
            self.reorgs += 1
            self.last_reorg = (fork, st.last_block)
            log.warning(
                "chain reorganisation: block %s is %s (indexed as %s); rewound the index to block %s (reorg #%s)",
                st.last_block, now or "gone", st.last_block_hash, fork, self.reorgs,
            )
        st2 = self._state()
        return st2 if st2 is not None else self._ensure_state()

    def _fork_point(self, st: SyncState) -> tuple[int, str | None]:
        """The highest recorded block the chain still agrees with (binary search: if a block
        matches, so do all before it), else the block before the deployment."""
        with self.Session() as s:
            cps = s.execute(
                select(BlockCheckpoint.block, BlockCheckpoint.block_hash)
                .where(BlockCheckpoint.block < st.last_block)
                .order_by(BlockCheckpoint.block)
            ).all()
        lo, hi, best = 0, len(cps) - 1, -1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._block_hash(cps[mid][0]) == cps[mid][1]:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best >= 0:
            return int(cps[best][0]), str(cps[best][1])
        start = max(0, int(self.chain.deploy_block) - 1)
        return start, self._block_hash(start)

    def _rewind(self, fork: int, fork_hash: str | None, *, expect: tuple[Any, ...] | None = None) -> bool:
        """Delete everything derived from blocks above ``fork`` (uploads stay), in one transaction.
        With ``expect`` (last block, its hash, the deploy block hash, as read before), nothing is
        done if the state changed meanwhile (another indexer on the database rewound or synced):
        returns whether it rewound."""
        with self._write() as s:
            cur = s.get(SyncState, 1)
            if cur is None or (expect is not None
                               and (cur.last_block, cur.last_block_hash, cur.deploy_block_hash) != expect):
                return False
            s.execute(delete(BlockCheckpoint).where(BlockCheckpoint.block > fork))
            gone = select(Round.round_id).where(Round.opened_block > fork)
            s.execute(delete(SkippedCommitment).where(
                (SkippedCommitment.block > fork) | SkippedCommitment.round_id.in_(gone)))
            touched = set(s.scalars(select(Update.round_id).where(Update.block > fork)).all())
            s.execute(delete(Update).where((Update.block > fork) | Update.round_id.in_(gone)))
            s.execute(delete(Round).where(Round.opened_block > fork))
            for rid in touched:
                r = s.get(Round, rid)
                if r is not None:
                    r.commit_count = s.scalar(select(func.count()).where(Update.round_id == rid)) or 0
            for r in s.scalars(select(Round).where(Round.closed_block > fork)).all():
                r.status = ROUND_OPEN
                r.closed_block = r.closed_tx = r.close_gas_used = r.expired_by = None
                r.global_model_hash = r.report_hash = None
                r.accepted_count = 0
                r.metrics = r.strategy = r.report_error = None
                r.report_merged = False
                for u in r.updates:
                    u.accepted, u.reason, u.weight = None, None, None
            nodes = set(s.scalars(select(NodeEvent.node).where(NodeEvent.block > fork)).all())
            s.execute(delete(NodeEvent).where(NodeEvent.block > fork))
            s.flush()
            for node in nodes:
                self._fold_node(s, node)
            st = s.get(SyncState, 1)
            assert st is not None
            if st.genesis_block is not None and st.genesis_block > fork:
                st.genesis_model_hash = st.genesis_block = None
            st.last_block = fork
            st.last_block_hash = fork_hash
        return True

    def _sync(self) -> int:
        st = self._check_chain(self._ensure_state())
        last, last_hash = st.last_block, st.last_block_hash
        head = int(self.chain.block_number()) - self.confirmations
        applied = 0
        start = last + 1
        while start <= head:
            end = min(head, start + self.batch_blocks - 1)
            end_hash = self._block_hash(end)
            events = sorted(self.chain.events(start, end), key=lambda e: (e.block_number, e.log_index))
            if self._tracks_hashes and (
                end_hash is None or self._block_hash(end) != end_hash
                or (last_hash is not None and self._block_hash(last) != last_hash)
            ):
                log.info("blocks %s-%s changed while being read (a reorg): the next sync re-reads them", start, end)
                break
            gas: dict[str, int | None] = {}
            moved = False
            with self._write() as s:
                st = s.get(SyncState, 1)
                if st is None or (st.last_block, st.last_block_hash) != (last, last_hash):
                    # Another indexer on this database applied these blocks (or rewound, or wiped
                    # the index) since this one read the state: apply nothing here.
                    moved = True
                    now = None if st is None else (st.last_block, st.last_block_hash)
                else:
                    applied_events: list[EventRecord] = []
                    for ev in events:
                        if ev.block_number < start or ev.block_number > end:
                            continue
                        if self._apply(s, ev, gas):
                            applied_events.append(ev)
                    st.last_block = end
                    st.last_block_hash = end_hash
                    if end_hash is not None:
                        s.merge(BlockCheckpoint(block=end, block_hash=end_hash))
                        keep = select(BlockCheckpoint.block).order_by(BlockCheckpoint.block.desc()).limit(self.checkpoints)
                        s.execute(delete(BlockCheckpoint).where(BlockCheckpoint.block.not_in(keep.scalar_subquery())))
            if moved:
                if now is None or now[0] < last:
                    break  # wiped or rewound under us: the next sync starts over from the state
                log.debug("blocks %s-%s were indexed by another indexer; going on from block %s",
                          start, end, now[0] + 1)
                last, last_hash = now
                start = last + 1
                continue
            applied += len(applied_events)
            last, last_hash = end, end_hash
            start = end + 1
            if applied_events:
                self._notify(applied_events)
        self._merge_reports()
        return applied

    def _notify(self, events: list[EventRecord]) -> None:
        for listener in self.listeners:
            try:
                listener(events)
            except Exception:  # noqa: BLE001 - a listener's failure must not stop the index
                log.exception("an index listener failed")

    def _gas(self, tx_hash: str, cache: dict[str, int | None]) -> int | None:
        if tx_hash not in cache:
            gas_used = getattr(self.chain, "gas_used", None)  # a reader may offer the cheap path
            try:
                cache[tx_hash] = int(gas_used(tx_hash) if gas_used else self.chain.receipt(tx_hash).gas_used)
            except NotFound:
                cache[tx_hash] = None
        return cache[tx_hash]

    @staticmethod
    def _fold_node(s: Session, node: str) -> None:
        """``nodes`` row of ``node`` from its remaining ``node_events`` (deleted if none is left)."""
        evs = s.scalars(
            select(NodeEvent).where(NodeEvent.node == node).order_by(NodeEvent.block, NodeEvent.log_index)
        ).all()
        n = s.get(Node, node)
        if not any(e.kind == "admitted" for e in evs):
            if n is not None:
                s.delete(n)
            return
        if n is None:
            n = Node(address=node)
            s.add(n)
        for e in evs:
            Indexer._node_step(n, e)

    @staticmethod
    def _node_step(n: Node, e: NodeEvent) -> None:
        if e.kind == "admitted":
            n.active = True
            n.joined_block = e.block
            n.metadata_hash = e.metadata_hash or ZERO_HASH
            n.public_key = e.public_key or "0x"
            n.removed_block = None
        elif e.kind == "removed":
            n.active = False
            n.removed_block = e.block
        elif e.kind == "updated":
            n.metadata_hash = e.metadata_hash or ZERO_HASH
            n.public_key = e.public_key or "0x"

    def _node_event(self, s: Session, ev: EventRecord, kind: str) -> bool:
        a = ev.args
        node = _addr(a["node"])
        n = s.get(Node, node)
        if kind != "admitted" and n is None:
            return False  # removed/updated before any admission: nothing to change
        e = s.get(NodeEvent, (ev.block_number, ev.log_index))
        if e is None:
            e = NodeEvent(block=ev.block_number, log_index=ev.log_index, node=node, kind=kind)
            s.add(e)
        if kind != "removed":
            e.metadata_hash = _hash(a["metadataHash"])
            e.public_key = _hexbytes(a["publicKey"])
        if n is None:
            n = Node(address=node)
            s.add(n)
        self._node_step(n, e)
        return True

    def _apply(self, s: Session, ev: EventRecord, gas: dict[str, int | None]) -> bool:
        a = ev.args
        name = ev.name
        if name == "RoundOpened":
            rid = int(a["roundId"])
            r = s.get(Round, rid)
            if r is None:
                r = Round(round_id=rid, status=ROUND_OPEN, commit_count=0, accepted_count=0, report_merged=False)
                s.add(r)
            r.base_model_hash = _hash(a["baseModelHash"])
            r.config_hash = _hash(a["configHash"])
            params = round_params(a["params"])
            r.deadline = params.deadline
            r.min_updates = params.min_updates
            r.max_samples = params.max_samples
            r.selection_rate = params.selection_rate
            r.relay_cutoff = params.relay_cutoff
            r.eligible_count = int(a.get("eligibleCount") or 0)
            r.seed = _opt_hash(a.get("seed"))
            r.opened_block = ev.block_number
            r.opened_tx = _hash(ev.tx_hash)
            r.open_gas_used = self._gas(ev.tx_hash, gas)
        elif name == "UpdateSubmitted":
            rid = int(a["roundId"])
            node = _addr(a["node"])
            r = s.get(Round, rid)
            if r is None:
                log.warning("UpdateSubmitted for round %s before its RoundOpened; skipped", rid)
                return False
            u = s.get(Update, (rid, node))
            if u is None:
                u = Update(round_id=rid, node=node)
                s.add(u)
                r.commit_count = (r.commit_count or 0) + 1
            u.update_hash = _hash(a["updateHash"])
            u.num_samples = int(a["numSamples"])
            u.block = ev.block_number
            u.tx_hash = _hash(ev.tx_hash)
            u.gas_used = self._gas(ev.tx_hash, gas)
        elif name == "DeadlineBroughtForward":
            rid = int(a["roundId"])
            r = s.get(Round, rid)
            if r is None:
                log.warning("DeadlineBroughtForward for round %s before its RoundOpened; skipped", rid)
                return False
            r.deadline = int(a["deadline"])
        elif name == "CommitmentSkipped":
            rid = int(a["roundId"])
            if s.get(Round, rid) is None:
                log.warning("CommitmentSkipped for round %s before its RoundOpened; skipped", rid)
                return False
            key = (_hash(ev.tx_hash), ev.log_index)
            sk = s.get(SkippedCommitment, key)
            if sk is None:
                sk = SkippedCommitment(tx_hash=key[0], log_index=key[1], round_id=rid)
                s.add(sk)
            sk.node = _addr(a["node"])
            sk.reason_code = int(a["reason"])
            sk.block = ev.block_number
        elif name in ("RoundFinalized", "RoundExpired"):
            rid = int(a["roundId"])
            r = s.get(Round, rid)
            if r is None:
                log.warning("%s for round %s before its RoundOpened; skipped", name, rid)
                return False
            r.closed_block = ev.block_number
            r.closed_tx = _hash(ev.tx_hash)
            r.close_gas_used = self._gas(ev.tx_hash, gas)
            if name == "RoundFinalized":
                r.status = ROUND_FINALIZED
                r.global_model_hash = _opt_hash(a["globalModelHash"])
                r.report_hash = _opt_hash(a["reportHash"])
                r.accepted_count = int(a["acceptedCount"])
            else:
                r.status = ROUND_EXPIRED
                r.expired_by = _addr(a["expiredBy"])
                r.report_merged = True  # nothing to merge
        elif name == "NodeAdmitted":
            return self._node_event(s, ev, "admitted")
        elif name == "NodeRemoved":
            return self._node_event(s, ev, "removed")
        elif name == "NodeUpdated":
            return self._node_event(s, ev, "updated")
        elif name == "GenesisModelSet":
            st = s.get(SyncState, 1)
            if st is not None:
                st.genesis_model_hash = _hash(a["modelHash"])
                st.genesis_block = ev.block_number
        else:
            return False  # RegistrationModeChanged, role events...: nothing indexed
        return True

    # -- round reports -------------------------------------------------------------------------
    def _merge_reports(self) -> None:
        with self.Session() as s:
            waiting = s.scalar(select(func.count()).where(
                Round.status == ROUND_FINALIZED, Round.report_merged.is_(False)))
        if not waiting:
            return
        with self._write() as s:
            pending = s.scalars(
                select(Round).where(Round.status == ROUND_FINALIZED, Round.report_merged.is_(False))
            ).all()
            for r in pending:
                if not r.report_hash:
                    r.report_merged = True
                    continue
                try:
                    if not self.store.has(r.report_hash):
                        continue  # not uploaded yet: retry on a later sync
                    size = int(self.store.size(r.report_hash))
                    if size > self.max_json_bytes:  # checked before a byte is read
                        raise ReportError(f"report is {size} bytes, more than the limit of {self.max_json_bytes}")
                    data = self.store.get(r.report_hash)
                except BlobNotFound:
                    continue
                except StoreUnavailable as exc:  # the store's server is down: not the report's fault
                    log.warning("round %s: report %s not read yet: %s", r.round_id, r.report_hash, exc)
                    continue
                except (FedchainError, ReportError) as exc:
                    log.warning("round %s: report %s not merged: %s", r.round_id, r.report_hash, exc)
                    r.report_error = f"{type(exc).__name__}: {exc}"[:500]
                    r.report_merged = True
                    continue
                try:
                    report = decode_json(data, max_bytes=self.max_json_bytes)
                    self._apply_report(r, report)
                except (FedchainError, ReportError, ValueError, KeyError, TypeError, OverflowError) as exc:
                    log.warning("round %s: report %s not merged: %s", r.round_id, r.report_hash, exc)
                    r.report_error = f"{type(exc).__name__}: {exc}"[:500]
                r.report_merged = True

    @staticmethod
    def _apply_report(r: Round, report: Any) -> None:
        if not isinstance(report, dict):
            raise ReportError("report is not a JSON object")
        if "round" in report and int(report["round"]) != r.round_id:
            raise ReportError(f"report is for round {report['round']}, not {r.round_id}")
        gm = report.get("global_model_hash")
        if gm is not None and r.global_model_hash is not None and _hash(gm) != r.global_model_hash:
            raise ReportError(f"report's global_model_hash {gm} differs from the chain's {r.global_model_hash}")
        entries = report.get("updates") or []
        if not isinstance(entries, list):
            raise ReportError("report's updates is not a list")
        by_node = {u.node.lower(): u for u in r.updates}
        decided: list[tuple[Update, dict[str, Any]]] = []
        for e in entries:
            if not isinstance(e, dict) or not is_address(str(e.get("node", ""))):
                raise ReportError(f"report update entry {str(e)[:100]} has no valid node")
            u = by_node.get(str(e["node"]).lower())
            if u is None:
                raise ReportError(f"report names node {e['node']}, which has no commitment in round {r.round_id}")
            if e.get("update_hash") is not None and _hash(e["update_hash"]) != u.update_hash:
                raise ReportError(f"report's update_hash for {u.node} differs from the on-chain commitment")
            w = e.get("weight")
            if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(float(w))):
                raise ReportError(f"report's weight for {u.node} is not a finite number")
            decided.append((u, e))
        metrics = report.get("metrics")
        metrics = _finite(dict(metrics), "metrics") if isinstance(metrics, dict) else {}
        strategy = report.get("strategy")
        strategy = _finite(dict(strategy), "strategy") if isinstance(strategy, dict) else None
        for u, e in decided:
            u.accepted = e.get("accepted") is True
            reason = e.get("reason")
            u.reason = None if reason is None else str(reason)[:500]
            w = e.get("weight")
            u.weight = None if w is None else float(w)
        r.metrics = metrics
        r.strategy = strategy
        r.report_error = None
