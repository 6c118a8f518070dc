"""One aggregator per data folder and per contract: an advisory ``fcntl`` lock plus a note of the holder.

``fedchain aggregator`` takes two locks:

- ``<data_dir>/aggregator.lock``, before it serves anything and for as long as it runs: two
  aggregators writing one blob store and one index would open rounds under each other (the first
  then dies on ``RoundNotOpen``);
- while its round loop runs, a per-user lock for the deployment (chain id, TrainingRounds address
  and the hash of the block it was deployed in, so a restarted dev chain with the same addresses
  is another chain), in ``$XDG_RUNTIME_DIR/fedchain`` or the temp folder: two round loops with
  different data folders on one deployment would race for the same rounds. An aggregator that
  only serves (``--rounds 0``, or after its last round) does not hold it, so another may take
  over the rounds.

Each lock file holds JSON naming the holder (pid, API URL, data folder, start time), which the
refusal prints. The kernel drops an ``flock`` when its process dies, so a crashed aggregator never
leaves a stale lock behind (the note may stay; it is only read while the lock is held).

A file lock covers one machine. When the index is on PostgreSQL (``FEDCHAIN_DB_URL``), the round
loop also holds a session advisory lock for the deployment in that database
(:func:`database_lock`), so two machines sharing the database cannot both run round loops; the
refusal names the holder's host, pid and API URL (the lock connection's ``application_name``).
PostgreSQL drops the lock with the holder's connection, so a crashed machine frees it once its
connection is gone. Without a shared database, a second machine is still stopped on-chain: an
aggregator refuses to run while an open round's config is not in its own store
(:meth:`fedchain.aggregator.service.Aggregator.open_round`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError


@dataclass
class HeldLock:
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


@dataclass
class AggregatorLocks:
    held: list[HeldLock] = field(default_factory=list)

    def release(self) -> None:
        for lock in reversed(self.held):
            lock.release()
        self.held.clear()

    def __enter__(self) -> "AggregatorLocks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe(note: dict[str, Any]) -> str:
    parts = [f"pid {note.get('pid', '?')}"]
    if note.get("api_url"):
        parts.append(f"API {note['api_url']}")
    if note.get("data_dir"):
        parts.append(f"data folder {note['data_dir']}")
    if note.get("started"):
        parts.append("since " + time.strftime("%H:%M:%S", time.localtime(float(note["started"]))))
    return ", ".join(parts)


def take(path: Path, note: dict[str, Any], *, what: str, hint: str) -> HeldLock:
    """Lock ``path`` (created if needed) and write ``note`` into it; ConfigError naming the holder
    when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
        except (OSError, ValueError):
            holder = {}
        os.close(fd)
        raise ConfigError(f"{what} is in use by another aggregator ({_describe(holder)})", hint=hint) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
    return HeldLock(path, fd)


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "fedchain"
    return Path(tempfile.gettempdir()) / f"fedchain-{os.getuid()}"


def contract_key(chain_id: int, contract: str, deploy_block_hash: str | None) -> str:
    text = f"{int(chain_id)}:{contract.lower()}:{(deploy_block_hash or '').lower()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _note(api_url: str, data_dir: Path | None, **extra: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "api_url": api_url, "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "started": time.time(), **extra}


def data_dir_lock(data_dir: Path, *, api_url: str) -> HeldLock:
    """The data folder's lock, held while the aggregator process runs (its blob store and index)."""
    return take(Path(data_dir) / "aggregator.lock", _note(api_url, data_dir), what=f"the data folder {data_dir}",
                hint="stop that aggregator first (Ctrl-C), or give this one its own --data-dir and its own deployment")


_ONE_LOOP = ("one round loop per deployment: stop the other aggregator first (Ctrl-C), or deploy your own "
             "contracts with `fedchain deploy`")


def contract_lock(*, chain_id: int, contract: str, deploy_block_hash: str | None, api_url: str,
                  data_dir: Path | None = None, db_url: str | None = None) -> AggregatorLocks:
    """The deployment's lock, held while a round loop runs (an aggregator that only serves the API,
    or whose rounds are done, does not hold it): a file lock on this machine and, with ``db_url`` on
    PostgreSQL, the database's advisory lock for every machine that shares it."""
    path = runtime_dir() / f"aggregator-{contract_key(chain_id, contract, deploy_block_hash)}.lock"
    locks = AggregatorLocks()
    locks.held.append(take(path, _note(api_url, data_dir, chain_id=int(chain_id), contract=contract),
                           what=f"the contract {contract} on chain {chain_id}", hint=_ONE_LOOP))
    try:
        if db_url is not None:
            held = database_lock(db_url, chain_id=chain_id, contract=contract, deploy_block_hash=deploy_block_hash,
                                 api_url=api_url)
            if held is not None:
                locks.held.append(held)  # type: ignore[arg-type]
    except BaseException:
        locks.release()
        raise
    return locks


@dataclass
class DatabaseLock:
    """A session advisory lock held on its own connection until :meth:`release`."""

    engine: Any
    conn: Any
    key: int

    def release(self) -> None:
        if self.conn is None:
            return
        from sqlalchemy import text

        try:
            self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self.conn.commit()
        except Exception:  # noqa: BLE001 - closing the connection drops the lock anyway
            pass
        finally:
            self.conn.close()
            self.engine.dispose()
            self.conn = None


def database_lock(db_url: str, *, chain_id: int, contract: str, deploy_block_hash: str | None,
                  api_url: str) -> DatabaseLock | None:
    """On PostgreSQL, ``pg_try_advisory_lock`` for the deployment (None for SQLite: one machine's
    file, covered by the file lock). ConfigError naming the holder when another session holds it."""
    import socket

    from sqlalchemy import text

    from fedchain.index.indexer import make_engine

    engine = make_engine(db_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        return None
    key = int(contract_key(chain_id, contract, deploy_block_hash)[:15], 16)  # 60 bits: a positive bigint
    me = f"fedchain round loop {socket.gethostname()} pid {os.getpid()} {api_url}"[:63]
    conn = engine.connect()
    try:
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": me})
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not got:
            holder = conn.execute(text(
                "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"), {"k": key}).first()
            who = (f"{holder[0] or 'a session without a name'}" + (f", from {holder[1]}" if holder[1] else "")
                   if holder else "a session that has just ended")
            raise ConfigError(f"the contract {contract} on chain {chain_id} has a round loop on a machine that "
                              f"shares this database ({who})", hint=_ONE_LOOP)
        conn.commit()  # end the implicit transaction; the session lock stays
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    return DatabaseLock(engine, conn, key)


def acquire(data_dir: Path, *, chain_id: int, contract: str, deploy_block_hash: str | None,
            api_url: str) -> AggregatorLocks:
    """Both locks at once (see the module docstring), or ConfigError naming the process that holds one."""
    locks = AggregatorLocks()
    try:
        locks.held.append(data_dir_lock(data_dir, api_url=api_url))
        locks.held.append(contract_lock(chain_id=chain_id, contract=contract, deploy_block_hash=deploy_block_hash,
                                        api_url=api_url, data_dir=data_dir))
    except BaseException:
        locks.release()
        raise
    return locks
