"""Content-addressed blob storage (see :mod:`fedchain.store.base`): a folder (the default) or an
S3 bucket (:mod:`fedchain.store.s3`, ``s3://bucket/prefix``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from fedchain.errors import ConfigError
from fedchain.store.base import BlobStore, StoreUnavailable
from fedchain.store.filesystem import FilesystemStore

if TYPE_CHECKING:
    from fedchain.settings import Settings
    from fedchain.store.s3 import S3Store

__all__ = ["BlobStore", "FilesystemStore", "S3Store", "StoreUnavailable", "open_store", "store_from_settings"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)


def __getattr__(name: str):  # noqa: ANN202 - S3Store imported on first use (boto3 is heavy)
    if name == "S3Store":
        from fedchain.store.s3 import S3Store

        return S3Store
    raise AttributeError(name)


def open_store(location: str | Path, *, max_bytes: int | None = None, s3_endpoint: str | None = None) -> BlobStore:
    """A store for ``location``: a folder path, a ``file://`` URL or ``s3://bucket[/prefix]``.

    ``s3_endpoint`` is the S3 server's URL (``FEDCHAIN_S3_ENDPOINT``; None: botocore's own
    configuration, AWS by default). Other URL schemes raise ConfigError.
    """
    if isinstance(location, Path):
        return FilesystemStore(location, max_bytes=max_bytes)
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(f"blob store location must be a folder path or a URL, got {location!r}")
    m = _SCHEME.fullmatch(location)
    if m is None:
        return FilesystemStore(Path(location), max_bytes=max_bytes)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise ConfigError(f"file URL {location!r} must hold an absolute path (file:///path/to/blobs)")
        return FilesystemStore(Path(unquote(rest)), max_bytes=max_bytes)
    if scheme == "s3":
        from fedchain.store.s3 import S3Store

        return S3Store.from_url(location, max_bytes=max_bytes, endpoint_url=s3_endpoint or None)
    raise ConfigError(
        f"unknown blob store scheme {scheme!r} in {location!r}",
        hint="pass a folder path, a file:///path URL or s3://bucket/prefix (FEDCHAIN_BLOB_URL)",
    )


def store_from_settings(settings: Settings) -> BlobStore:
    """The aggregator's store: ``FEDCHAIN_BLOB_URL`` if set, else ``$FEDCHAIN_DATA_DIR/blobs``."""
    location: str | Path = settings.blob_url or settings.data_dir / "blobs"
    return open_store(location, max_bytes=settings.max_blob_bytes, s3_endpoint=settings.s3_endpoint)
