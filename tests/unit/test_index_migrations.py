"""The index schema under Alembic, on SQLite (PostgreSQL: tests/scale/test_scale_index.py): the
initial revision is exactly the models, and the start-up check upgrades, adopts or refuses."""

from __future__ import annotations

import logging
import shutil
import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from fakes import make_world
from fedchain.cli import main
from fedchain.errors import ConfigError
from fedchain.index import Indexer, SyncState
from fedchain.index.indexer import make_engine
from fedchain.index.migrations import LOCATION, alembic_config, ensure_schema, head_revision, status
from fedchain.index.models import SCHEMA_VERSION, Base


def _diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def test_alembic_upgrade_head_on_an_empty_database_matches_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    cfg = alembic_config(location=LOCATION)
    cfg.set_main_option("sqlalchemy.url", str(engine.url))
    command.upgrade(cfg, "head")  # through env.py, as the alembic command runs it
    assert _diff(engine) == []
    with engine.connect() as conn:
        assert status(conn).state == "head"
        assert status(conn).current == (head_revision(),)


def test_an_indexer_on_an_empty_database_creates_the_schema_at_head(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'i.sqlite'}"
    with caplog.at_level(logging.INFO, logger="fedchain.index.migrations"):
        idx = Indexer(None, None, url)
    assert any("creating the schema" in r.getMessage() for r in caplog.records)
    assert _diff(idx.engine) == []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fedchain.index.migrations"):
        Indexer(None, None, url)  # at head: nothing to say, nothing done
    assert not caplog.records


def test_an_unknown_revision_is_refused_with_the_fix(tmp_path):
    db = tmp_path / "newer.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    with pytest.raises(ConfigError) as exc:
        Indexer(None, None, f"sqlite:///{db}")
    assert "ffff9999" in exc.value.message and "does not know" in exc.value.message
    assert str(db) in exc.value.hint and "rebuilt from the chain" in exc.value.hint


def test_an_older_revision_is_upgraded_and_the_log_says_so(tmp_path, caplog):
    loc = tmp_path / "migrations"
    shutil.copytree(LOCATION, loc, ignore=shutil.ignore_patterns("__pycache__"))
    (loc / "versions" / "0002_probe.py").write_text(
        'revision = "0002"\ndown_revision = "0001"\nbranch_labels = None\ndepends_on = None\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        "def upgrade():\n    op.create_table('probe', sa.Column('id', sa.Integer(), primary_key=True))\n\n"
        "def downgrade():\n    op.drop_table('probe')\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    ensure_schema(engine)  # at 0001, this package's head
    with caplog.at_level(logging.INFO, logger="fedchain.index.migrations"):
        before = ensure_schema(engine, location=loc)
    assert before.state == "behind" and before.current == ("0001",) and before.head == "0002"
    assert any("upgrading the schema from revision 0001 to 0002" in r.getMessage() for r in caplog.records)
    with engine.connect() as conn:
        assert status(conn, location=loc).state == "head"
        assert status(conn).state == "unknown"  # and this package now refuses it: 0002 is not its own


def test_check_only_names_the_upgrade_command(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with pytest.raises(ConfigError) as exc:
        ensure_schema(engine, upgrade=False)
    assert "fedchain db upgrade" in exc.value.hint


def test_an_index_from_before_migrations_with_the_current_tables_is_adopted(tmp_path):
    w = make_world(tmp_path, open_round=False)
    w.run_round([True, False])
    w.indexer.sync()
    url = w.settings.resolved_db_url()
    before = w.indexer.indexed_block()
    w.indexer.engine.dispose()
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("DROP TABLE alembic_version")  # what fedchain before migrations left behind
    conn.commit()
    conn.close()
    idx = Indexer(w.chain, w.store, url)
    assert idx.indexed_block() == before  # kept, not rebuilt
    with idx.engine.connect() as c:
        assert status(c).state == "head"


def test_rows_of_another_index_version_are_emptied_and_rebuilt(tmp_path):
    w = make_world(tmp_path, open_round=False)
    w.run_round([True])
    w.indexer.sync()
    with w.indexer.Session.begin() as s:
        s.get(SyncState, 1).schema_version = SCHEMA_VERSION - 1
    idx = Indexer(w.chain, w.store, w.settings.resolved_db_url())
    assert idx.indexed_block() is None
    idx.sync()
    assert idx.indexed_block() == w.chain.block_number()


def test_fedchain_db_current_and_upgrade(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"

    def out() -> str:
        return " ".join(capsys.readouterr().out.split())  # the console wraps long lines

    assert main(["db", "current", "--db-url", url]) == 1
    assert "empty database" in out()
    assert main(["db", "upgrade", "--db-url", url]) == 0
    text_ = out()
    assert "was: " in text_ and f"at revision {head_revision()} (head)" in text_
    assert main(["db", "upgrade", "--db-url", url]) == 0
    assert "nothing to do" in out()
    assert main(["db", "current", "--data-dir", str(tmp_path / "d")]) == 1  # the default SQLite file there
    assert str(tmp_path / "d" / "index.sqlite") in out().replace(" ", "")


def test_fedchain_db_reports_a_bad_url_as_one_error_line(capsys):
    assert main(["db", "current", "--db-url", "not a url"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error:" in err and "not an SQLAlchemy URL" in err and "Traceback" not in err


def test_a_database_that_does_not_answer_is_one_config_error_without_the_password():
    engine = make_engine("postgresql://fedchain:s3cret@127.0.0.1:9/fedchain")  # psycopg 3 for a bare URL
    assert engine.dialect.driver == "psycopg"
    with pytest.raises(ConfigError) as exc:
        Indexer(None, None, engine)
    assert "cannot open the index database postgresql+psycopg://fedchain:***@127.0.0.1:9/fedchain" in exc.value.message
    assert "s3cret" not in exc.value.message and "FEDCHAIN_DB_URL" in exc.value.hint
