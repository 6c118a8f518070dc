"""Blob store on a local filesystem: ``root/ab/cd/<64 hex digits>`` (the hash without ``0x``).

Serving (:meth:`FilesystemStore.stream`) verifies a blob's hash once per file version (size,
modification time and inode, as ``fstat`` reports them) and remembers it, then streams the file in
chunks: a blob is not re-hashed on every read, and never held whole in memory. ``get`` still
re-hashes every time (verification reads the whole blob anyway).

Writes go to a unique temporary file in the target folder, are flushed to disk, then renamed over
the final name with ``os.replace`` (atomic on POSIX and Windows). Readers therefore see a complete
blob or none, and two threads or processes putting the same blob at once each rename a complete
copy of the same bytes: whichever wins, the result is correct. No locks are needed.
"""

from __future__ import annotations

import mmap
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from fedchain.errors import BlobNotFound, ConfigError, HashMismatch
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
        #: hash -> (size, mtime_ns, inode) of the file version whose hash was last checked.
        self._verified: dict[str, tuple[int, int, int]] = {}
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
            self._remember(h, os.stat(final))
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
            self._remember(h, os.stat(final))  # verified on the way in (put hashed the bytes)
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

    # --- verified streaming ------------------------------------------------------------------------
    @staticmethod
    def _version(st: os.stat_result) -> tuple[int, int, int]:
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def _remember(self, h: str, st: os.stat_result) -> None:
        self._verified[h] = self._version(st)

    def _open(self, h: str) -> BinaryIO:
        try:
            return open(self.path(h), "rb")  # noqa: SIM115 - closed by the caller / the generator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(f"no blob {h} in the store at {self.root}") from None

    @staticmethod
    def _hash_file(f: BinaryIO, size: int) -> str:
        if size == 0:
            return commitment(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:  # paged in, not copied
            return commitment(mm)

    def stream(self, h: str, *, chunk_size: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
        """Size and chunks of blob ``h``. The open file is hashed only if this version of it
        (size, mtime, inode) was not verified before; the same open file is then streamed, so a
        rename over it in between cannot swap the bytes."""
        h = normalize_hash(h)
        f = self._open(h)
        try:
            st = os.fstat(f.fileno())
            if self._verified.get(h) != self._version(st):
                actual = self._hash_file(f, st.st_size)
                if actual != h:
                    self._verified.pop(h, None)
                    raise HashMismatch(
                        f"stored blob {h} is corrupted: its {st.st_size} bytes hash to {actual}",
                        hint=f"delete it from the store ({self.path(h)}) and upload it again",
                    )
                self._remember(h, st)
        except BaseException:
            f.close()
            raise

        def chunks() -> Iterator[bytes]:
            with f:
                while True:
                    chunk = f.read(chunk_size)
                    if not chunk:
                        return
                    yield chunk

        return st.st_size, chunks()

    def read_prefix(self, h: str, n: int) -> bytes:
        with self._open(normalize_hash(h)) as f:
            return f.read(max(0, n))

    def size(self, h: str) -> int:
        try:
            return self.path(h).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {normalize_hash(h)} in the store at {self.root}") from None

    def delete(self, h: str) -> None:
        self._verified.pop(normalize_hash(h), None)
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
