"""Chain events (+ round report blobs) into the SQL index that the API serves.

The index is a cache of the chain: :meth:`Indexer.sync` reads every fedchain event after the last
indexed block, in (block, log index) order, and applies it; the new rows and the new ``last_block``
are committed in one transaction, so a crash mid-way repeats the batch and every handler is
idempotent. Gas figures come from transaction receipts. When a round is finalized and its report
blob is in the store, each update's accepted/reason/weight and the round's metrics are filled in
from the report; a report that is not in the store yet is retried on every later sync.

If the database describes another deployment (chain id or contract addresses differ) it is wiped
and rebuilt. :meth:`Indexer.rebuild` does the same on demand.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fedchain.chain.types import ChainReader, EventRecord, RoundParams
from fedchain.codec import decode_json
from fedchain.errors import BlobNotFound, FedchainError, NotFound
from fedchain.index.models import (
    ROUND_EXPIRED,
    ROUND_FINALIZED,
    ROUND_OPEN,
    Base,
    Node,
    Round,
    SyncState,
    Update,
    Upload,
)
from fedchain.store import BlobStore

log = logging.getLogger(__name__)

#: Blocks fetched and committed per transaction.
BATCH_BLOCKS = 10_000
ZERO_HASH = "0x" + "00" * 32


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, WAL mode and cross-thread use."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
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
    """``RoundOpened.params`` as web3 decodes it (a tuple, or a mapping of component names)."""
    if isinstance(value, dict):
        return RoundParams(deadline=int(value["deadline"]), min_updates=int(value["minUpdates"]),
                           max_samples=int(value["maxSamples"]), selection_rate=int(value["selectionRate"]),
                           relay_cutoff=int(value["relayCutoff"]))
    deadline, min_updates, max_samples, rate, cutoff = (int(v) for v in value)
    return RoundParams(deadline=deadline, min_updates=min_updates, max_samples=max_samples, selection_rate=rate,
                       relay_cutoff=cutoff)


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
    ) -> None:
        self.chain = chain
        self.store = store
        self.engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.max_json_bytes = max_json_bytes
        self.batch_blocks = batch_blocks
        self._lock = threading.RLock()
        #: Message of the last failed sync (None after a good one); /health reports it.
        self.last_error: str | None = None
        #: time.time() of the last successful sync.
        self.last_sync_at: float | None = None
        Base.metadata.create_all(self.engine)

    # -- public --------------------------------------------------------------------------------
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
        """Index every event up to the chain head; returns how many events were applied."""
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
        """Drop every table (uploads included), recreate them and sync from the deploy block."""
        with self._lock:
            self._reset()
            return self.sync()

    # -- internals -----------------------------------------------------------------------------
    def _reset(self) -> None:
        Base.metadata.drop_all(self.engine)
        Base.metadata.create_all(self.engine)

    def _deployment(self) -> tuple[int, str, str]:
        return (
            int(self.chain.chain_id),
            _addr(self.chain.rounds_address),
            _addr(self.chain.registry_address),
        )

    def _ensure_state(self) -> int:
        """The last indexed block, after wiping an index that describes another deployment."""
        chain_id, rounds, registry = self._deployment()
        with self.Session() as s:
            st = s.get(SyncState, 1)
            if st is not None and (st.chain_id, st.rounds_address, st.registry_address) == (chain_id, rounds, registry):
                return st.last_block
        if st is not None:
            log.warning(
                "index describes chain %s / %s, not %s / %s: rebuilding it",
                st.chain_id, st.rounds_address, chain_id, rounds,
            )
            self._reset()
        start = max(0, int(self.chain.deploy_block) - 1)
        with self.Session.begin() as s:
            s.add(
                SyncState(
                    id=1, chain_id=chain_id, rounds_address=rounds, registry_address=registry, last_block=start
                )
            )
        return start

    def _sync(self) -> int:
        last = self._ensure_state()
        head = int(self.chain.block_number())
        applied = 0
        start = last + 1
        while start <= head:
            end = min(head, start + self.batch_blocks - 1)
            events = sorted(self.chain.events(start, end), key=lambda e: (e.block_number, e.log_index))
            gas: dict[str, int | None] = {}
            with self.Session.begin() as s:
                for ev in events:
                    if ev.block_number < start or ev.block_number > end:
                        continue
                    if self._apply(s, ev, gas):
                        applied += 1
                st = s.get(SyncState, 1)
                assert st is not None
                st.last_block = end
            start = end + 1
        self._merge_reports()
        return applied

    def _gas(self, tx_hash: str, cache: dict[str, int | None]) -> int | None:
        if tx_hash not in cache:
            try:
                cache[tx_hash] = int(self.chain.receipt(tx_hash).gas_used)
            except NotFound:
                cache[tx_hash] = None
        return cache[tx_hash]

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
            node = _addr(a["node"])
            n = s.get(Node, node)
            if n is None:
                n = Node(address=node)
                s.add(n)
            n.active = True
            n.joined_block = ev.block_number
            n.metadata_hash = _hash(a["metadataHash"])
            n.public_key = _hexbytes(a["publicKey"])
            n.removed_block = None
        elif name == "NodeRemoved":
            n = s.get(Node, _addr(a["node"]))
            if n is None:
                return False
            n.active = False
            n.removed_block = ev.block_number
        elif name == "NodeUpdated":
            n = s.get(Node, _addr(a["node"]))
            if n is None:
                return False
            n.metadata_hash = _hash(a["metadataHash"])
            n.public_key = _hexbytes(a["publicKey"])
        elif name == "GenesisModelSet":
            st = s.get(SyncState, 1)
            if st is not None:
                st.genesis_model_hash = _hash(a["modelHash"])
        else:
            return False  # RegistrationModeChanged, role events...: nothing indexed
        return True

    # -- round reports -------------------------------------------------------------------------
    def _merge_reports(self) -> None:
        with self.Session() as s:
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
                    data = self.store.get(r.report_hash)
                except BlobNotFound:
                    continue
                try:
                    report = decode_json(data, max_bytes=self.max_json_bytes)
                    self._apply_report(r, report)
                except (FedchainError, ReportError, ValueError, KeyError, TypeError) as exc:
                    log.warning("round %s: report %s not merged: %s", r.round_id, r.report_hash, exc)
                    r.report_error = f"{type(exc).__name__}: {exc}"[:500]
                r.report_merged = True
            s.commit()

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
                raise ReportError(f"report update entry {e!r} has no valid node")
            u = by_node.get(str(e["node"]).lower())
            if u is None:
                raise ReportError(f"report names node {e['node']}, which has no commitment in round {r.round_id}")
            if e.get("update_hash") is not None and _hash(e["update_hash"]) != u.update_hash:
                raise ReportError(f"report's update_hash for {u.node} differs from the on-chain commitment")
            decided.append((u, e))
        for u, e in decided:
            u.accepted = bool(e.get("accepted"))
            reason = e.get("reason")
            u.reason = None if reason is None else str(reason)[:500]
            w = e.get("weight")
            u.weight = None if w is None else float(w)
        metrics = report.get("metrics")
        r.metrics = dict(metrics) if isinstance(metrics, dict) else {}
        strategy = report.get("strategy")
        r.strategy = dict(strategy) if isinstance(strategy, dict) else None
        r.report_error = None
