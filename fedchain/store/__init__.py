"""Content-addressed blob storage (see :mod:`fedchain.store.base`). Only the filesystem is built."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from fedchain.errors import ConfigError
from fedchain.store.base import BlobStore
from fedchain.store.filesystem import FilesystemStore

__all__ = ["BlobStore", "FilesystemStore", "open_store"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)


def open_store(location: str | Path, *, max_bytes: int | None = None) -> BlobStore:
    """A store for ``location``: a folder path or a ``file://`` URL.

    Other URL schemes (``s3://``...) raise ConfigError: only the filesystem backend is built.
    """
    if isinstance(location, Path):
        return FilesystemStore(location, max_bytes=max_bytes)
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(f"blob store location must be a folder path, got {location!r}")
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
    raise ConfigError(
        f"unknown blob store scheme {scheme!r} in {location!r}",
        hint="only the filesystem store is built: pass a folder path or a file:///path URL",
    )
