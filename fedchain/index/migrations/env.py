"""Alembic environment for the index schema (used by the ``alembic`` command and by
:func:`fedchain.index.migrations.upgrade`).

The database is, in order: a connection handed over in ``config.attributes["connection"]`` (how
fedchain runs migrations itself), ``sqlalchemy.url`` from the ini file, ``FEDCHAIN_DB_URL``, or
the default SQLite index under ``FEDCHAIN_DATA_DIR``. For a new revision, from the repository root::

    FEDCHAIN_DB_URL=sqlite:////tmp/at-head.sqlite .venv/bin/fedchain db upgrade
    FEDCHAIN_DB_URL=sqlite:////tmp/at-head.sqlite .venv/bin/alembic -c fedchain/index/migrations/alembic.ini \\
        revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from fedchain.index.models import Base

config = context.config
target_metadata = Base.metadata
if config.config_file_name:  # the alembic command (alembic.ini); fedchain itself passes no file
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from fedchain.settings import Settings

    return Settings().resolved_db_url()


def _configure(connection) -> None:  # noqa: ANN001 - an SQLAlchemy Connection
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later revisions use batch operations there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from fedchain.index.indexer import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
