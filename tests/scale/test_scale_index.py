"""The index on a real PostgreSQL server: the Alembic schema, the start-up revision check, and
several indexers (threads and processes) syncing one database at once."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import scenario
from fedchain.errors import ConfigError
from fedchain.index import Indexer
from fedchain.index.indexer import make_engine
from fedchain.index.migrations import LOCATION, ensure_schema, head_revision, status

REPO = Path(__file__).resolve().parents[2]


def _diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from fedchain.index.models import Base

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


# --- the schema -----------------------------------------------------------------------------------
def test_alembic_upgrade_head_on_an_empty_database_creates_exactly_the_models(pg_url):
    env = {"FEDCHAIN_DB_URL": pg_url, "PATH": str(Path(sys.executable).parent)}
    r = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", str(LOCATION / "alembic.ini"),
                        "upgrade", "head"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Running upgrade  -> 0001" in r.stderr
    assert _diff(pg_url) == []  # autogenerate finds nothing to change: the revision is the models
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert status(conn).state == "head"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()


def test_an_empty_database_is_upgraded_at_start_and_a_current_one_left_alone(pg_url, caplog):
    engine = make_engine(pg_url)
    assert ensure_schema(engine).state == "empty"
    assert _diff(pg_url) == []
    assert ensure_schema(engine).state == "head"
    engine.dispose()


def test_a_database_at_an_unknown_revision_is_refused_with_the_fix(pg_url):
    engine = make_engine(pg_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dbeef9999'"))
    with pytest.raises(ConfigError) as exc:
        Indexer(None, None, engine)
    assert "f00dbeef9999" in exc.value.message and "does not know" in exc.value.message
    assert "FEDCHAIN_DB_URL" in exc.value.hint and "another database" in exc.value.hint
    engine.dispose()


def test_a_database_with_tables_but_no_alembic_version_is_refused(pg_url):
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rounds (round_id BIGINT PRIMARY KEY, note TEXT)"))
        conn.execute(text("INSERT INTO rounds VALUES (1, 'someone else''s data')"))
    with pytest.raises(ConfigError) as exc:
        Indexer(None, None, engine)
    assert "no alembic_version" in exc.value.message and "rounds" in exc.value.message
    assert "empty database" in exc.value.hint
    with engine.connect() as conn:  # untouched
        assert conn.execute(text("SELECT note FROM rounds")).scalar() == "someone else's data"
    engine.dispose()


def test_processes_starting_together_on_an_empty_database_create_it_once(pg_url):
    code = ("import sys; from fedchain.index.indexer import make_engine; "
            "from fedchain.index.migrations import ensure_schema; "
            "print(ensure_schema(make_engine(sys.argv[1])).state)")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["empty", "head", "head", "head"]
    assert _diff(pg_url) == []


def test_postgresql_url_without_a_driver_uses_psycopg(pg_url):
    engine = make_engine(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


# --- indexing -------------------------------------------------------------------------------------
def test_an_index_on_postgresql_equals_one_on_sqlite(pg_url, tmp_path):
    w = scenario.build(tmp_path / "w")
    idx = Indexer(w.chain, w.store, pg_url, batch_blocks=3)
    idx.sync()
    assert scenario.snapshot(idx) == scenario.fresh_snapshot(w.chain, w.store, tmp_path / "f.sqlite")
    with idx.session() as s:  # 2^64-1 stored exactly (BIGINT would overflow)
        from fedchain.index import Update

        assert max(u.num_samples for u in s.query(Update)) == scenario.U64
    idx.rebuild()
    assert scenario.snapshot(idx) == scenario.fresh_snapshot(w.chain, w.store, tmp_path / "g.sqlite")
    idx.engine.dispose()


def _sync_loop(idx: Indexer, start: threading.Barrier, stop: threading.Event, errors: list) -> None:
    try:
        start.wait(30)
        while not stop.is_set():
            idx.sync()
        idx.sync()
    except Exception as exc:  # noqa: BLE001 - collected for the assertion
        errors.append(f"{type(exc).__name__}: {exc}")


def test_two_indexers_syncing_one_database_while_the_chain_grows_and_reorganises(pg_url, tmp_path):
    w = scenario.build(tmp_path / "w", rounds=3, leave_open=False)
    idx = [Indexer(w.chain, w.store, pg_url, batch_blocks=1), Indexer(w.chain, w.store, pg_url, batch_blocks=2)]
    for phase in ("grow", "reorg"):
        start, stop, errors = threading.Barrier(3), threading.Event(), []
        threads = [threading.Thread(target=_sync_loop, args=(i, start, stop, errors)) for i in idx]
        for t in threads:
            t.start()
        start.wait(30)
        if phase == "grow":
            for k in range(4):  # new rounds land while both indexers sync
                if k == 2:
                    base = w.chain.snapshot()
                w.run_round([True, False, True])
                time.sleep(0.05)
        else:
            w.chain.revert(base)  # a reorganisation under both of them: the last two rounds are gone
            w.model_hash = w.chain.latest_model_hash()
            w.run_round([False, True])
            w.chain.admit_node(scenario.account(31).address)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(120)
        assert errors == [], errors
        want = scenario.fresh_snapshot(w.chain, w.store, tmp_path / f"{phase}.sqlite")
        for i in idx:
            assert scenario.snapshot(i) == want
    assert sum(i.reorgs for i in idx) >= 1
    for i in idx:
        i.engine.dispose()


def _sync_in_process(url: str, tmp: str, start, out) -> None:  # noqa: ANN001
    import sys as _sys

    _sys.setrecursionlimit(10_000)
    try:
        w = scenario.build(Path(tmp))
        idx = Indexer(w.chain, w.store, url, batch_blocks=1)
        start.wait(60)
        applied = sum(idx.sync() for _ in range(3))
        out.put(("ok", applied, scenario.snapshot(idx)))
    except Exception as exc:  # noqa: BLE001
        import traceback

        out.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


def test_three_processes_syncing_one_database_at_once(pg_url, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_sync_in_process, args=(pg_url, str(tmp_path / f"p{i}"), start, out))
             for i in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(60)
    assert [r[0] for r in results] == ["ok"] * 3, [r[1:] for r in results if r[0] != "ok"]
    w = scenario.build(tmp_path / "main")
    want = scenario.fresh_snapshot(w.chain, w.store, tmp_path / "fresh.sqlite")
    assert all(r[2] == want for r in results)
    # Every event was applied once in all, whichever process applied it.
    assert sum(r[1] for r in results) == len(w.chain.events(0))
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sync_state")).scalar() == 1
    engine.dispose()
