"""Settings from the environment (prefix ``FEDCHAIN_``), with CLI flags taking precedence.

Only the environment is read: no .env files (see requirements-nodeps.txt for why).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEDCHAIN_", env_file=None, extra="ignore")

    #: JSON-RPC endpoint of the chain (anvil by default).
    rpc_url: str = "http://127.0.0.1:8545"
    #: Folder holding ``<chainId>.json`` deployment files written by ``scripts/deploy.py``.
    deployments_dir: Path = REPO_ROOT / "deployments"
    #: Folder holding brownie build artifacts (ABIs).
    build_dir: Path = REPO_ROOT / "build" / "contracts"
    #: Where the aggregator keeps blobs and its SQLite index.
    data_dir: Path = REPO_ROOT / ".fedchain" / "aggregator"
    #: SQLAlchemy URL of the index; defaults to SQLite under data_dir. PostgreSQL:
    #: ``postgresql+psycopg://user:password@host:5432/dbname`` (docs/scale.md).
    db_url: str | None = None
    #: Where the aggregator keeps blobs: a folder, a ``file:///path`` URL or ``s3://bucket/prefix``
    #: (docs/scale.md); defaults to the folder ``data_dir/blobs``.
    blob_url: str | None = None
    #: URL of an S3-compatible server for an ``s3://`` blob_url (MinIO, Ceph...; path-style
    #: requests). None: botocore's own configuration (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), else AWS.
    s3_endpoint: str | None = None
    #: Largest blob (update, model) accepted, in bytes.
    max_blob_bytes: int = 64 * 1024 * 1024
    #: Largest JSON blob (config, report) accepted, in bytes.
    max_json_bytes: int = 1024 * 1024
    #: API bind address.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: Public URL of the aggregator API (what nodes and auditors call).
    api_url: str = "http://127.0.0.1:8000"
    #: Signing key: a hex private key, or use keystore_file + password.
    private_key: str | None = None
    keystore_file: Path | None = None
    keystore_password: str | None = None
    #: On a local dev chain (anvil), the index of a well-known dev account.
    dev_account: int | None = None
    #: Seconds between chain polls.
    poll_interval: float = 0.5
    #: Upload bodies: the longest wait for the next chunk, and for the whole body, in seconds.
    #: A stalled or too slow upload is answered 408 (reason ``upload_timeout``) and nothing is
    #: stored. Transport only: never result-affecting (size limits live in the round config).
    upload_read_timeout: float = 30.0
    upload_body_timeout: float = 600.0
    #: Blocks below the chain head that the index does not read yet, so that a reorganisation of
    #: the newest blocks never reaches it. 0 suits anvil; set it on a real chain (e.g. 12).
    confirmations: int = Field(default=0, ge=0)

    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'index.sqlite'}"
