"""The index schema's Alembic revisions, and the check every indexer makes at start.

:func:`ensure_schema` looks at the database's ``alembic_version`` before anything else touches it:

=========================================  ==================================================
the database                               what happens
=========================================  ==================================================
empty (no tables)                          upgraded to the head revision
at the head revision                       nothing
at an older revision of this package       upgraded to head; one log line says from which
at a revision this fedchain does not know  ConfigError (a newer fedchain wrote it)
tables, but no ``alembic_version``         PostgreSQL and others: ConfigError (not ours, or an
                                           index from before migrations); SQLite (the
                                           aggregator's own cache file): fedchain's tables are
                                           adopted if they match the models exactly, else
                                           dropped and recreated (rebuilt from the chain)
=========================================  ==================================================

On PostgreSQL the check and the upgrade run under a session advisory lock
(``pg_advisory_lock``), so two processes starting on one empty database do not both create it.

The revisions are in ``versions/`` (a package, so they ship in the wheel); ``env.py`` serves the
``alembic`` command for developers (``alembic -c fedchain/index/migrations/alembic.ini ...``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from fedchain.errors import ConfigError

log = logging.getLogger("fedchain.index.migrations")

#: Where the revisions live.
LOCATION = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
#: Key of the PostgreSQL advisory lock held while the schema is checked and upgraded.
MIGRATE_LOCK_KEY = 0x6665_6463_6D69_6772  # "fedcmigr"


@dataclass(frozen=True)
class SchemaStatus:
    """What :func:`status` found: ``state`` is ``empty``, ``head``, ``behind``, ``unknown`` or
    ``unversioned`` (tables but no ``alembic_version``)."""

    url: str
    current: tuple[str, ...]
    head: str
    state: str
    tables: tuple[str, ...]

    def describe(self) -> str:
        cur = ", ".join(self.current) or "none"
        return {
            "empty": f"{self.url}: empty database (no tables); head revision is {self.head}",
            "head": f"{self.url}: at revision {cur} (head)",
            "behind": f"{self.url}: at revision {cur}, older than the head revision {self.head}",
            "unknown": f"{self.url}: at revision {cur}, which this fedchain does not know (head is {self.head})",
            "unversioned": f"{self.url}: {len(self.tables)} table(s) but no {VERSION_TABLE} table "
                           f"(not a migrated fedchain index); head revision is {self.head}",
        }[self.state]


def alembic_config(connection: Connection | None = None, *, location: Path | str = LOCATION):  # noqa: ANN201
    """An Alembic ``Config`` for the revisions at ``location``, bound to ``connection`` if given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=8)
def _script(location: str):  # noqa: ANN202
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(location=location))


def head_revision(location: Path | str = LOCATION) -> str:
    heads = _script(str(location)).get_heads()
    if len(heads) != 1:  # a packaging mistake, never a user's
        raise RuntimeError(f"the index migrations have {len(heads)} heads: {heads}")
    return heads[0]


def _known(rev: str, location: str) -> bool:
    from alembic.util import CommandError

    try:
        return _script(location).get_revision(rev) is not None
    except (CommandError, KeyError):
        return False


def _url(engine: Engine | Connection) -> str:
    url = engine.engine.url if isinstance(engine, Connection) else engine.url
    return url.render_as_string(hide_password=True)


def status(conn: Connection, *, location: Path | str = LOCATION) -> SchemaStatus:
    """The schema state of the database behind ``conn`` (reads only)."""
    from alembic.migration import MigrationContext

    loc = str(location)
    head = head_revision(loc)
    tables = tuple(sorted(inspect(conn).get_table_names()))
    current: tuple[str, ...] = ()
    if VERSION_TABLE in tables:
        current = tuple(MigrationContext.configure(conn).get_current_heads())
    others = tuple(t for t in tables if t != VERSION_TABLE)
    if VERSION_TABLE not in tables:
        state = "unversioned" if others else "empty"
    elif not current:
        state = "unversioned" if others else "empty"  # an empty alembic_version table
    elif current == (head,):
        state = "head"
    elif all(_known(r, loc) for r in current):
        state = "behind"
    else:
        state = "unknown"
    return SchemaStatus(url=_url(conn), current=current, head=head, state=state, tables=others)


def _upgrade(conn: Connection, location: str) -> None:
    from alembic import command

    if conn.in_transaction():
        conn.commit()
    command.upgrade(alembic_config(conn, location=location), "head")
    if conn.in_transaction():
        conn.commit()


def _matches_models(conn: Connection) -> bool:
    """True if the fedchain tables in the database are exactly the models' (Alembic's compare)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from fedchain.index.models import Base

    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return not compare_metadata(ctx, Base.metadata)


def _drop_fedchain_tables(conn: Connection) -> None:
    from fedchain.index.models import Base

    names = set(inspect(conn).get_table_names())
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in names:
            conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
    conn.commit()


def _stamp_head(conn: Connection, location: str) -> None:
    from alembic import command

    if conn.in_transaction():
        conn.commit()
    command.stamp(alembic_config(conn, location=location), "head")
    if conn.in_transaction():
        conn.commit()


def _unknown_error(st: SchemaStatus, sqlite_path: str | None) -> ConfigError:
    fix = (f"run the fedchain version that wrote it, or delete {sqlite_path} (the index is rebuilt from the chain)"
           if sqlite_path else
           "run the fedchain version that wrote it, or point FEDCHAIN_DB_URL at another database "
           "(`fedchain db current` shows the revisions)")
    return ConfigError(
        f"the index database {st.url} is at schema revision {', '.join(st.current)}, which this fedchain "
        f"does not know (its newest is {st.head}); refusing to use it",
        hint=fix,
    )


def _unversioned_error(st: SchemaStatus) -> ConfigError:
    shown = ", ".join(st.tables[:5]) + (", ..." if len(st.tables) > 5 else "")
    return ConfigError(
        f"the index database {st.url} has tables ({shown}) but no {VERSION_TABLE} table: it is not a "
        f"fedchain index this version manages; refusing to touch it",
        hint="point FEDCHAIN_DB_URL at an empty database of its own (fedchain creates the schema), or, if "
             "these are the tables of an index written before schema migrations, drop them: the index is "
             "rebuilt from the chain",
    )


def connect(engine: Engine) -> Connection:
    """``engine.connect()``, with a database that cannot be reached as a ConfigError."""
    from sqlalchemy.exc import DBAPIError

    try:
        return engine.connect()
    except DBAPIError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            f"cannot open the index database {_url(engine)}: {detail[0] if detail else type(exc).__name__}",
            hint="is the database server up, and FEDCHAIN_DB_URL right (postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB)?",
        ) from None


def ensure_schema(engine: Engine, *, location: Path | str = LOCATION, upgrade: bool = True) -> SchemaStatus:
    """Check the database's schema revision and bring it to head (see the module docstring).

    Returns the status found before any change. ``upgrade=False`` only checks: an empty or older
    database then raises ConfigError naming ``fedchain db upgrade``."""
    loc = str(location)
    sqlite = engine.dialect.name == "sqlite"
    postgres = engine.dialect.name == "postgresql"
    sqlite_path = (engine.url.database or None) if sqlite else None
    with connect(engine) as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            conn.commit()
        try:
            st = status(conn, location=loc)
            if st.state == "head":
                return st
            if st.state == "unknown":
                raise _unknown_error(st, sqlite_path)
            if st.state == "unversioned" and not sqlite:
                raise _unversioned_error(st)
            if not upgrade:
                raise ConfigError(f"the index schema needs an upgrade: {st.describe()}",
                                  hint="run `fedchain db upgrade` (the aggregator also upgrades it at start)")
            if st.state == "unversioned":
                from fedchain.index.models import Base

                ours = {t.name for t in Base.metadata.sorted_tables} & set(st.tables)
                if ours and _matches_models(conn):
                    log.info("index %s: adopting the existing tables (they match revision %s)", st.url, st.head)
                    _stamp_head(conn, loc)
                    return st
                if ours:
                    log.warning("the index at %s has an older schema: rebuilding it from the chain", st.url)
                    _drop_fedchain_tables(conn)
            if st.state == "behind":
                log.warning("index %s: upgrading the schema from revision %s to %s", st.url,
                            ", ".join(st.current), st.head)
            else:
                log.info("index %s: creating the schema (revision %s)", st.url, st.head)
            _upgrade(conn, loc)
            return st
        finally:
            if postgres:
                if conn.in_transaction():
                    conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
                conn.commit()
