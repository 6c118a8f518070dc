"""Content-addressed filesystem store: verification in and out, atomic idempotent writes."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedchain.errors import BlobNotFound, BlobTooLarge, ConfigError, HashMismatch, InvalidBlob
from fedchain.hashing import commitment
from fedchain.store import BlobStore, FilesystemStore, open_store

BLOB = b"model bytes " * 1000
H = commitment(BLOB)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "blobs")


def test_put_returns_commitment_and_get_returns_bytes(store):
    assert store.put(BLOB) == H
    assert store.has(H)
    assert store.get(H) == BLOB
    assert store.size(H) == len(BLOB)
    assert list(store.iter_hashes()) == [H]


def test_put_accepts_matching_expected_hash_in_any_case(store):
    assert store.put(BLOB, expected_hash=H.upper().replace("0X", "0x")) == H
    assert store.get(H[2:].upper()) == BLOB


def test_layout_fans_out_on_the_first_two_bytes(store):
    store.put(BLOB)
    hex_ = H[2:]
    assert (store.root / hex_[:2] / hex_[2:4] / hex_).read_bytes() == BLOB


def test_put_rejects_bytes_not_matching_expected_hash_and_stores_nothing(store):
    other = commitment(b"something else")
    with pytest.raises(HashMismatch) as exc:
        store.put(BLOB, expected_hash=other)
    assert other in exc.value.message and H in exc.value.message
    assert not store.has(H) and not store.has(other)
    assert list(store.iter_hashes()) == []
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_put_rejects_a_malformed_expected_hash(store):
    with pytest.raises(InvalidBlob) as exc:
        store.put(BLOB, expected_hash="0x1234")
    assert exc.value.reason == "bad_hash"
    assert not store.has(H)


def test_put_is_idempotent(store):
    assert store.put(BLOB) == store.put(BLOB) == H
    assert list(store.iter_hashes()) == [H]
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [H[2:]]


def test_get_missing_blob_raises_not_found(store):
    with pytest.raises(BlobNotFound):
        store.get(H)
    with pytest.raises(BlobNotFound):
        store.size(H)
    with pytest.raises(BlobNotFound):
        store.delete(H)
    assert not store.has(H)


def test_corruption_on_disk_is_detected_on_read(store):
    store.put(BLOB)
    path = store.path(H)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(HashMismatch) as exc:
        store.get(H)
    assert H in exc.value.message and "corrupted" in exc.value.message
    assert str(path) in (exc.value.hint or "")


def test_put_repairs_a_corrupted_copy(store):
    store.put(BLOB)
    store.path(H).write_bytes(b"x" * len(BLOB))
    store.put(BLOB)
    assert store.get(H) == BLOB


def test_delete_removes_the_blob(store):
    store.put(BLOB)
    store.delete(H)
    assert not store.has(H)
    assert list(store.iter_hashes()) == []


def test_iter_hashes_ignores_temporary_and_foreign_files(store):
    hashes = {store.put(b"a"), store.put(b"b"), store.put(b"")}
    some = store.path(next(iter(hashes))).parent
    (some / ".tmp-leftover").write_bytes(b"partial")
    (store.root / "README").write_text("not a blob")
    assert set(store.iter_hashes()) == hashes


def test_max_bytes_is_enforced(tmp_path):
    small = FilesystemStore(tmp_path, max_bytes=10)
    with pytest.raises(BlobTooLarge):
        small.put(b"x" * 11)
    assert small.put(b"x" * 10) == commitment(b"x" * 10)


def test_concurrent_puts_of_the_same_blob_from_threads(store):
    blob = os.urandom(3 << 20)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.put(blob), range(16)))
    h = commitment(blob)
    assert set(results) == {h}
    assert store.get(h) == blob
    assert [p.name for p in store.path(h).parent.iterdir()] == [h[2:]]  # no temp files left


def _put_in_process(root: str, blob: bytes, n: int) -> str:
    s = FilesystemStore(Path(root))
    for _ in range(n):
        h = s.put(blob)
    return h


def test_concurrent_puts_of_the_same_blob_from_processes(store):
    blob = os.urandom(2 << 20)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_put_in_process, [(str(store.root), blob, 5)] * 3)
    assert set(results) == {commitment(blob)}
    assert store.get(commitment(blob)) == blob


def test_open_store_accepts_paths_and_file_urls(tmp_path):
    for location in (tmp_path / "a", str(tmp_path / "b"), f"file://{tmp_path / 'c'}"):
        s = open_store(location)
        assert isinstance(s, FilesystemStore) and isinstance(s, BlobStore)
        assert s.get(s.put(BLOB)) == BLOB
    assert open_store(f"file://{tmp_path / 'c'}").root == tmp_path / "c"


@pytest.mark.parametrize("location", ["gs://bucket", "https://example.org/blobs"])
def test_open_store_rejects_unknown_schemes_with_a_hint(location):
    with pytest.raises(ConfigError) as exc:
        open_store(location)
    assert "scheme" in exc.value.message
    assert "folder path" in (exc.value.hint or "") and "s3://" in (exc.value.hint or "")


def test_store_root_that_is_a_file_is_a_config_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError):
        FilesystemStore(f)


# --- verified streaming ----------------------------------------------------------------------------
def test_stream_yields_the_blob_in_bounded_chunks(store):
    store.put(BLOB)
    size, chunks = store.stream(H, chunk_size=1000)
    parts = list(chunks)
    assert size == len(BLOB) and b"".join(parts) == BLOB
    assert max(len(p) for p in parts) <= 1000


def test_stream_verifies_once_per_file_version(store, monkeypatch):
    import fedchain.store.filesystem as fs

    calls = []
    real = fs.commitment
    monkeypatch.setattr(fs, "commitment", lambda data: calls.append(1) or real(data))
    store.put(BLOB)
    after_put = len(calls)
    for _ in range(3):
        b"".join(store.stream(H)[1])
    assert len(calls) == after_put  # put verified it; serving does not re-hash
    fresh = FilesystemStore(store.root)  # another process: verifies once, then remembers
    b"".join(fresh.stream(H)[1])
    b"".join(fresh.stream(H)[1])
    assert len(calls) == after_put + 1


def test_stream_refuses_a_blob_changed_on_disk(store):
    store.put(BLOB)
    b"".join(store.stream(H)[1])
    store.path(H).write_bytes(BLOB[:-1] + b"!")
    with pytest.raises(HashMismatch):
        store.stream(H)


def test_stream_and_read_prefix_of_a_missing_blob(store):
    with pytest.raises(BlobNotFound):
        store.stream(H)
    with pytest.raises(BlobNotFound):
        store.read_prefix(H, 8)


def test_stream_of_the_empty_blob(store):
    h = store.put(b"")
    size, chunks = store.stream(h)
    assert size == 0 and b"".join(chunks) == b""


def test_read_prefix_reads_at_most_n_bytes(store):
    store.put(BLOB)
    assert store.read_prefix(H, 12) == BLOB[:12]
    assert store.read_prefix(H, 10**9) == BLOB
