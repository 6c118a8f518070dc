"""Blob store on a local filesystem: ``root/ab/cd/<64 hex digits>`` (the hash without ``0x``).

Writes go to a unique temporary file in the target folder, are flushed to disk, then renamed over
the final name with ``os.replace`` (atomic on POSIX and Windows). Readers therefore see a complete
blob or none, and two threads or processes putting the same blob at once each rename a complete
copy of the same bytes: whichever wins, the result is correct. No locks are needed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from fedchain.errors import BlobNotFound, ConfigError
from fedchain.hashing import commitment, normalize_hash
from fedchain.store.base import BlobStore

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_TMP_PREFIX = ".tmp-"


class FilesystemStore(BlobStore):
    def __init__(self, root: Path | str, max_bytes: int | None = None, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"blob store root {self.root} exists and is not a folder") from None
        except OSError as exc:
            raise ConfigError(f"cannot create the blob store folder {self.root}: {exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self.root)!r})"

    def path(self, h: str) -> Path:
        """Where blob ``h`` lives (whether or not it exists)."""
        hex_ = normalize_hash(h)[2:]
        return self.root / hex_[:2] / hex_[2:4] / hex_

    def describe(self, h: str) -> str:
        return str(self.path(h))

    # --- raw operations --------------------------------------------------------------------------
    def _write(self, h: str, data: bytes) -> None:
        final = self.path(h)
        if self._intact(final, h, len(data)):
            return  # idempotent: already stored (a corrupted copy is replaced below)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @staticmethod
    def _intact(path: Path, h: str, size: int) -> bool:
        try:
            if path.stat().st_size != size:
                return False
            return commitment(path.read_bytes()) == h
        except FileNotFoundError:
            return False

    def _read(self, h: str) -> bytes:
        try:
            return self.path(h).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {h} in the store at {self.root}") from None

    def has(self, h: str) -> bool:
        return self.path(h).is_file()

    def size(self, h: str) -> int:
        try:
            return self.path(h).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {normalize_hash(h)} in the store at {self.root}") from None

    def delete(self, h: str) -> None:
        try:
            self.path(h).unlink()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {normalize_hash(h)} in the store at {self.root}") from None

    def iter_hashes(self) -> Iterator[str]:
        for d1 in sorted(self._subdirs(self.root)):
            for d2 in sorted(self._subdirs(d1)):
                with os.scandir(d2) as it:
                    for entry in it:
                        name = entry.name
                        if (
                            _HEX64.fullmatch(name)
                            and name[:2] == d1.name
                            and name[2:4] == d2.name
                            and entry.is_file()
                        ):
                            yield "0x" + name

    @staticmethod
    def _subdirs(folder: Path) -> list[Path]:
        try:
            with os.scandir(folder) as it:
                return [Path(e.path) for e in it if _HEX2.fullmatch(e.name) and e.is_dir()]
        except FileNotFoundError:
            return []
