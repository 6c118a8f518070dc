"""Commitment hashes: the names under which every blob is stored, uploaded and committed on-chain.

``commitment(data)`` is a SHA-256 Merkle root over fixed 1 MiB chunks, with domain-separated leaf,
inner and root nodes and the blob's length mixed into the root::

    leaf_i = sha256(0x00 || chunk_i)                       chunk_i = data[i*2^20 : (i+1)*2^20]
    inner  = sha256(0x01 || left || right)                 (an odd last node is promoted unchanged)
    root   = sha256(0x02 || uint64_be(len(data)) || tree_root)

The empty blob has exactly one (empty) chunk. The result is written ``"0x"`` + 64 lowercase hex
digits, which is also the on-chain ``bytes32``. docs/protocol.md ("Commitment hash") is the
normative description, with test vectors.

SHA-256 because the EVM has it as a precompile (a later per-chunk proof can be checked on-chain)
and it is several times faster than keccak-256 here; the Merkle form is what allows those proofs.
"""

from __future__ import annotations

import hashlib
import re

from fedchain.errors import InvalidBlob
from fedchain.pools import run_split, usable_cpus

__all__ = [
    "CHUNK_SIZE",
    "HASH_RE",
    "ZERO_HASH",
    "bytes32_to_hash",
    "commitment",
    "hash_to_bytes32",
    "is_hash",
    "normalize_hash",
]

#: Leaf size of the Merkle tree, in bytes (1 MiB). Part of the protocol: never change it.
CHUNK_SIZE = 1 << 20

_LEAF = b"\x00"
_INNER = b"\x01"
_ROOT = b"\x02"

#: Blobs with at least this many chunks hash their leaves on several threads (hashlib releases
#: the GIL on large inputs). The result does not depend on it.
_PARALLEL_MIN_CHUNKS = 4
_MAX_WORKERS = 8

#: What :func:`normalize_hash` accepts: an optional ``0x``/``0X`` prefix and 64 hex digits.
HASH_RE = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")

#: The all-zero bytes32, which the contracts reject as a commitment (``ZeroHash()``).
ZERO_HASH = "0x" + "00" * 32


def _leaf(view: memoryview, start: int) -> bytes:
    h = hashlib.sha256(_LEAF)
    h.update(view[start : start + CHUNK_SIZE])
    return h.digest()


def _workers(n_chunks: int) -> int:
    if n_chunks < _PARALLEL_MIN_CHUNKS:
        return 1
    return max(1, min(usable_cpus(), _MAX_WORKERS, n_chunks))


def merkle_root(data: bytes | bytearray | memoryview, *, workers: int | None = None) -> bytes:
    """The 32-byte tree root (before the length is mixed in). Exposed for proofs and tests."""
    view = memoryview(data).cast("B")
    n = len(view)
    starts = range(0, n, CHUNK_SIZE) if n else range(1)  # the empty blob: one empty chunk
    n_workers = _workers(len(starts)) if workers is None else max(1, workers)
    if n_workers > 1:
        # contiguous groups of leaves with about equal bytes (a short last leaf counts for its size:
        # 4 MiB + 500 bytes on two threads is 2 + 2 leaves and a short one, not 3 + 2)
        cuts = sorted({min(len(starts), (k * n + n_workers * CHUNK_SIZE // 2) // (n_workers * CHUNK_SIZE))
                       for k in range(1, n_workers)} | {0, len(starts)})
        groups = [starts[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
        leaves = run_split("commitment", _MAX_WORKERS, lambda g: [_leaf(view, s) for s in g], [(g,) for g in groups])
        level = [leaf for part in leaves for leaf in part]
    else:
        level = [_leaf(view, s) for s in starts]
    sha256 = hashlib.sha256
    while len(level) > 1:
        nxt = [sha256(_INNER + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # odd node promoted unchanged
        level = nxt
    return level[0]


def commitment(data: bytes | bytearray | memoryview, *, workers: int | None = None) -> str:
    """The commitment hash of ``data``: ``"0x"`` + 64 lowercase hex digits (see module docstring).

    ``workers`` only changes how fast it is computed (None: automatic; 1: one thread).
    """
    n = memoryview(data).nbytes
    root = hashlib.sha256(_ROOT + n.to_bytes(8, "big") + merkle_root(data, workers=workers)).digest()
    return "0x" + root.hex()


def is_hash(s: object) -> bool:
    """True if ``s`` is a string :func:`normalize_hash` accepts (``0x`` optional, any case)."""
    return isinstance(s, str) and HASH_RE.fullmatch(s) is not None


def normalize_hash(s: object) -> str:
    """Canonical form ``"0x"`` + 64 lowercase hex digits; raises InvalidBlob(reason="bad_hash")."""
    if isinstance(s, str):
        m = HASH_RE.fullmatch(s)
        if m is not None:
            return "0x" + m.group(1).lower()
    shown = repr(s) if not isinstance(s, str) or len(s) <= 80 else repr(s[:77] + "...")
    raise InvalidBlob(
        f"not a commitment hash: {shown}",
        reason="bad_hash",
        hint="a hash is 0x followed by 64 hex digits",
    )


def hash_to_bytes32(h: str) -> bytes:
    """The 32 raw bytes of a hash string (for contract calls)."""
    return bytes.fromhex(normalize_hash(h)[2:])


def bytes32_to_hash(b: bytes | bytearray | memoryview) -> str:
    """The canonical string of 32 raw bytes (from contract calls and events)."""
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise InvalidBlob(f"a bytes32 hash must be bytes, got {type(b).__name__}", reason="bad_hash")
    raw = bytes(b)
    if len(raw) != 32:
        raise InvalidBlob(f"a bytes32 hash must be 32 bytes, got {len(raw)}", reason="bad_hash")
    return "0x" + raw.hex()
