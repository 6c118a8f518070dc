"""One round loop per deployment across machines: the PostgreSQL advisory lock every aggregator
that shares the index database takes (fedchain.aggregator.lock.database_lock), on a real server."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import text

from fedchain.aggregator import lock
from fedchain.errors import ConfigError
from fedchain.index.indexer import make_engine

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _loop_lock(machine, tmp_path, monkeypatch, pg_url, **kw):
    """contract_lock as aggregator ``machine`` takes it: its own runtime folder (file locks cannot see
    each other), one shared database."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / machine))
    (tmp_path / machine).mkdir(exist_ok=True)
    args = {"chain_id": 31337, "contract": ADDRESS, "deploy_block_hash": "0xab", **kw}
    return lock.contract_lock(api_url=f"http://{machine}:8000", data_dir=tmp_path / machine / "data",
                              db_url=pg_url, **args)


def test_second_machine_on_the_same_database_is_refused_naming_the_first(pg_url, tmp_path, monkeypatch):
    first = _loop_lock("machine-a", tmp_path, monkeypatch, pg_url)
    try:
        with pytest.raises(ConfigError, match="has a round loop on a machine that shares this database") as info:
            _loop_lock("machine-b", tmp_path, monkeypatch, pg_url)
        assert f"{socket.gethostname()} pid {os.getpid()} http://machine-a:8000" in info.value.message
        assert "one round loop per deployment" in info.value.hint
        # another deployment on the same database is another lock
        other = _loop_lock("machine-b", tmp_path, monkeypatch, pg_url, deploy_block_hash="0xcd")
        other.release()
    finally:
        first.release()
    again = _loop_lock("machine-b", tmp_path, monkeypatch, pg_url)  # released: the round loop may move
    again.release()


def test_a_crashed_holder_frees_the_lock_with_its_connection(pg_url, tmp_path, monkeypatch):
    first = _loop_lock("machine-a", tmp_path, monkeypatch, pg_url)
    db = [h for h in first.held if isinstance(h, lock.DatabaseLock)][0]
    holder_pid = db.conn.execute(text("SELECT pg_backend_pid()")).scalar()
    db.conn.commit()
    admin = make_engine(pg_url)
    with admin.connect() as conn:  # the machine is gone: the server ends its session
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder_pid}).scalar()
    admin.dispose()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "machine-b"))
    taken = lock.database_lock(pg_url, chain_id=31337, contract=ADDRESS, deploy_block_hash="0xab",
                               api_url="http://machine-b:8000")
    assert taken is not None
    taken.release()
    first.release()  # releasing a lock whose connection was killed is quiet


def test_sqlite_index_needs_no_database_lock(tmp_path):
    assert lock.database_lock(f"sqlite:///{tmp_path}/index.sqlite", chain_id=1, contract=ADDRESS,
                              deploy_block_hash=None, api_url="x") is None
