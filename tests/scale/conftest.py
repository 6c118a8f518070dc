"""Scale fixtures: a throwaway PostgreSQL cluster and an S3 server for the session (services.py).

``make test-scale`` installs what they need; ``FEDCHAIN_TEST_PG_URL`` / ``FEDCHAIN_TEST_S3_ENDPOINT``
point them at servers of your own instead. A server that cannot be started fails the tests that
need it (with the reason): it never skips them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# fakes.py (FakeChain, make_world) from the unit tests and harness.py (anvil, processes) from the
# end-to-end tests, shared rather than copied.
for extra in (HERE, HERE.parent / "unit", HERE.parent / "e2e"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from services import Postgres, S3Server, external_postgres, external_s3, start_moto, start_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    url = os.environ.get("FEDCHAIN_TEST_PG_URL")
    pg = external_postgres(url) if url else start_postgres()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """A new, empty PostgreSQL database for one test."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    endpoint = os.environ.get("FEDCHAIN_TEST_S3_ENDPOINT")
    server = external_s3(endpoint) if endpoint else start_moto(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch) -> S3Server:
    """The S3 server's credentials in this process's environment (botocore reads them there)."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    """A new, empty bucket for one test."""
    return s3_env.create_bucket()
