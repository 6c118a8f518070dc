"""The content-addressed blob store interface.

Blobs (models, updates, round configs and reports) are stored under their commitment hash
(:func:`fedchain.hashing.commitment`). Every backend verifies on the way in (``put`` with an
``expected_hash`` stores nothing unless the bytes hash to it) and on the way out (``get`` re-hashes
and raises :class:`~fedchain.errors.HashMismatch` for corrupted bytes), so a store can never hand
out bytes under a name they do not hash to.

A backend implements the raw methods (``_write``, ``_read``, ``has``, ``size``, ``delete``,
``iter_hashes``); the verification lives here, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

from fedchain.errors import BlobError, BlobTooLarge, HashMismatch
from fedchain.hashing import commitment, normalize_hash


class StoreUnavailable(BlobError):
    """The store's server (S3) does not answer or fails: try again later (HTTP 503). Never means
    that a blob is missing or corrupted."""

    http_status = 503


class BlobStore(ABC):
    """Content-addressed storage. Hash arguments accept any form :func:`normalize_hash` does."""

    #: Largest blob ``put`` accepts (None: no limit).
    max_bytes: int | None = None

    def put(self, data: bytes, expected_hash: str | None = None) -> str:
        """Store ``data``; returns its commitment. Idempotent.

        If ``expected_hash`` is given and the bytes hash to something else, raises HashMismatch
        and stores nothing. Raises BlobTooLarge above ``max_bytes``.
        """
        data = bytes(data) if not isinstance(data, bytes) else data
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise BlobTooLarge(
                f"blob is {len(data)} bytes, more than the store's limit of {self.max_bytes}",
                hint="raise FEDCHAIN_MAX_BLOB_BYTES if this model size is intended",
            )
        h = commitment(data)
        if expected_hash is not None:
            want = normalize_hash(expected_hash)
            if want != h:
                raise HashMismatch(f"bytes hash to {h}, not to the expected {want}; nothing stored")
        self._write(h, data)
        return h

    def get(self, h: str) -> bytes:
        """The blob's bytes, re-verified. BlobNotFound if absent, HashMismatch if corrupted."""
        h = normalize_hash(h)
        data = self._read(h)
        actual = commitment(data)
        if actual != h:
            raise HashMismatch(
                f"stored blob {h} is corrupted: its {len(data)} bytes hash to {actual}",
                hint=f"delete it from the store ({self.describe(h)}) and upload it again",
            )
        return data

    def stream(self, h: str, *, chunk_size: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
        """The blob's size and its bytes in chunks of at most ``chunk_size``, verified.

        BlobNotFound if absent, HashMismatch if corrupted (raised here, before any chunk). This
        default reads and re-hashes the whole blob; a backend may verify once and remember it
        (see :meth:`FilesystemStore.stream`), so that serving a blob does not re-hash it each time.
        """
        data = self.get(h)
        return len(data), (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))

    def read_prefix(self, h: str, n: int) -> bytes:
        """At most the first ``n`` raw bytes of a blob, NOT verified (for sniffing its kind).
        BlobNotFound if absent."""
        return self._read(normalize_hash(h))[: max(0, n)]

    def describe(self, h: str) -> str:
        """Where the blob lives, for messages."""
        return normalize_hash(h)

    @abstractmethod
    def _write(self, h: str, data: bytes) -> None:
        """Store ``data`` (already verified to hash to canonical ``h``), atomically and idempotently."""

    @abstractmethod
    def _read(self, h: str) -> bytes:
        """The raw stored bytes for canonical ``h``; BlobNotFound if absent."""

    @abstractmethod
    def has(self, h: str) -> bool:
        """Whether a blob is stored under ``h`` (not re-verified)."""

    @abstractmethod
    def size(self, h: str) -> int:
        """Stored size in bytes; BlobNotFound if absent."""

    @abstractmethod
    def delete(self, h: str) -> None:
        """Remove a blob (tests, admin); BlobNotFound if absent."""

    @abstractmethod
    def iter_hashes(self) -> Iterator[str]:
        """Every stored hash, canonical form, in no particular order."""
