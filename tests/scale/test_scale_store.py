"""The BlobStore contract, run against both backends: the filesystem and S3 (a real S3-compatible
server process, moto_server; see services.py). Then what only S3 has: ETags, prefixes, layout."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedchain.errors import BlobNotFound, BlobTooLarge, ConfigError, HashMismatch, InvalidBlob
from fedchain.hashing import commitment
from fedchain.store import BlobStore, FilesystemStore, S3Store, open_store

BLOB = b"model bytes " * 1000
H = commitment(BLOB)


class Backend:
    """A store plus the backend-specific ways a test reaches behind its back."""

    def __init__(self, kind: str, make, raw_write) -> None:  # noqa: ANN001
        self.kind = kind
        self.make = make  # max_bytes=None -> a new store on the same place
        self.raw_write = raw_write  # (store, hash, bytes): overwrite the stored copy directly
        self.store: BlobStore = make()


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "filesystem":
        root = tmp_path / "blobs"
        return Backend("filesystem", lambda max_bytes=None: FilesystemStore(root, max_bytes=max_bytes),
                       lambda s, h, data: s.path(h).write_bytes(data))
    s3 = request.getfixturevalue("s3_env")
    bucket = request.getfixturevalue("s3_bucket")
    client = s3.client()
    return Backend("s3", lambda max_bytes=None: S3Store(bucket, "blobs", max_bytes=max_bytes, endpoint_url=s3.endpoint),
                   lambda s, h, data: client.put_object(Bucket=bucket, Key=s.key(h), Body=data))


@pytest.fixture
def store(backend: Backend) -> BlobStore:
    return backend.store


# --- the contract ------------------------------------------------------------------------------------
def test_put_returns_commitment_and_get_returns_bytes(store):
    assert store.put(BLOB) == H
    assert store.has(H)
    assert store.get(H) == BLOB
    assert store.size(H) == len(BLOB)
    assert list(store.iter_hashes()) == [H]


def test_put_accepts_matching_expected_hash_in_any_case(store):
    assert store.put(BLOB, expected_hash=H.upper().replace("0X", "0x")) == H
    assert store.get(H[2:].upper()) == BLOB


def test_put_rejects_bytes_not_matching_expected_hash_and_stores_nothing(store):
    other = commitment(b"something else")
    with pytest.raises(HashMismatch) as exc:
        store.put(BLOB, expected_hash=other)
    assert other in exc.value.message and H in exc.value.message
    assert not store.has(H) and not store.has(other)
    assert list(store.iter_hashes()) == []


def test_put_rejects_a_malformed_expected_hash(store):
    with pytest.raises(InvalidBlob) as exc:
        store.put(BLOB, expected_hash="0x1234")
    assert exc.value.reason == "bad_hash"
    assert not store.has(H)


def test_put_is_idempotent(store):
    assert store.put(BLOB) == store.put(BLOB) == H
    assert list(store.iter_hashes()) == [H]


def test_missing_blob_is_not_found_everywhere(store):
    assert not store.has(H)
    for op in (store.get, store.size, store.delete, store.stream, lambda h: store.read_prefix(h, 8)):
        with pytest.raises(BlobNotFound):
            op(H)


def test_corruption_is_detected_on_read_and_named(backend, store):
    store.put(BLOB)
    damaged = bytearray(BLOB)
    damaged[100] ^= 0x01
    backend.raw_write(store, H, bytes(damaged))
    with pytest.raises(HashMismatch) as exc:
        store.get(H)
    assert H in exc.value.message and "corrupted" in exc.value.message
    assert store.describe(H) in (exc.value.hint or "")
    with pytest.raises(HashMismatch):
        store.stream(H)
    with pytest.raises(HashMismatch):
        backend.make().stream(H)  # another process's store too


def test_put_repairs_a_corrupted_copy(backend, store):
    store.put(BLOB)
    backend.raw_write(store, H, b"x" * len(BLOB))
    assert store.put(BLOB) == H
    assert store.get(H) == BLOB
    size, chunks = store.stream(H)
    assert size == len(BLOB) and b"".join(chunks) == BLOB


def test_delete_removes_the_blob(store):
    store.put(BLOB)
    store.delete(H)
    assert not store.has(H)
    assert list(store.iter_hashes()) == []


def test_iter_hashes_lists_every_blob(store):
    hashes = {store.put(b"a"), store.put(b"b"), store.put(b""), store.put(os.urandom(3000))}
    assert set(store.iter_hashes()) == hashes


def test_max_bytes_is_enforced(backend):
    small = backend.make(max_bytes=10)
    with pytest.raises(BlobTooLarge):
        small.put(b"x" * 11)
    assert not small.has(commitment(b"x" * 11))
    assert small.put(b"x" * 10) == commitment(b"x" * 10)


def test_concurrent_puts_of_the_same_blob_from_threads(store):
    blob = os.urandom(3 << 20)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.put(blob), range(16)))
    h = commitment(blob)
    assert set(results) == {h}
    assert store.get(h) == blob
    assert list(store.iter_hashes()) == [h]


def _put_in_process(kind: str, where: dict, blob: bytes, n: int) -> str:
    s = (FilesystemStore(Path(where["root"])) if kind == "filesystem"
         else S3Store(where["bucket"], "blobs", endpoint_url=where["endpoint"]))
    for _ in range(n):
        h = s.put(blob)
    return h


def test_concurrent_puts_of_the_same_blob_from_processes(backend, store):
    blob = os.urandom(2 << 20)
    where = ({"root": str(store.root)} if backend.kind == "filesystem"
             else {"bucket": store.bucket, "endpoint": store.endpoint_url})
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_put_in_process, [(backend.kind, where, blob, 4)] * 3)
    assert set(results) == {commitment(blob)}
    assert store.get(commitment(blob)) == blob


def test_stream_yields_the_blob_in_bounded_chunks(store):
    store.put(BLOB)
    size, chunks = store.stream(H, chunk_size=1000)
    parts = list(chunks)
    assert size == len(BLOB) and b"".join(parts) == BLOB
    assert max(len(p) for p in parts) <= 1000


def test_a_multi_chunk_blob_round_trips(backend, store):
    blob = os.urandom((5 << 20) + 3)  # six Merkle leaves, the last one partial
    h = store.put(blob)
    assert store.get(h) == blob
    fresh = backend.make()  # verifies it from scratch, streaming through the hash
    size, chunks = fresh.stream(h, chunk_size=777_777)
    assert size == len(blob) and b"".join(chunks) == blob


def test_stream_refuses_a_blob_changed_behind_the_store(backend, store):
    store.put(BLOB)
    b"".join(store.stream(H)[1])
    backend.raw_write(store, H, BLOB[:-1] + b"!")
    with pytest.raises(HashMismatch):
        store.stream(H)


def test_stream_of_the_empty_blob(store):
    h = store.put(b"")
    size, chunks = store.stream(h)
    assert size == 0 and b"".join(chunks) == b""
    assert store.read_prefix(h, 8) == b""
    assert store.get(h) == b""


def test_read_prefix_reads_at_most_n_bytes(store):
    store.put(BLOB)
    assert store.read_prefix(H, 12) == BLOB[:12]
    assert store.read_prefix(H, 0) == b""
    assert store.read_prefix(H, 10**9) == BLOB


# --- S3 only --------------------------------------------------------------------------------------------
def test_open_store_builds_an_s3_store_with_the_filesystem_layout(s3_env, s3_bucket):
    s = open_store(f"s3://{s3_bucket}/fed/blobs/", s3_endpoint=s3_env.endpoint, max_bytes=1 << 20)
    assert isinstance(s, S3Store) and s.prefix == "fed/blobs/" and s.max_bytes == 1 << 20
    h = s.put(BLOB)
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == [f"fed/blobs/{h[2:4]}/{h[4:6]}/{h[2:]}"]
    assert s.describe(h) == f"s3://{s3_bucket}/{keys[0]}"


def test_a_folder_store_copied_into_the_bucket_is_an_s3_store(tmp_path, s3_env, s3_bucket):
    fs = FilesystemStore(tmp_path / "blobs")
    hashes = {fs.put(b"one"), fs.put(b"two" * 5000)}
    client = s3_env.client()
    for p in (tmp_path / "blobs").rglob("*"):
        if p.is_file():  # what `aws s3 sync blobs s3://bucket/prefix` does
            client.put_object(Bucket=s3_bucket, Key=f"copy/{p.relative_to(tmp_path / 'blobs')}", Body=p.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="copy/README", Body=b"not a blob")
    s3 = S3Store(s3_bucket, "copy", endpoint_url=s3_env.endpoint)
    assert set(s3.iter_hashes()) == hashes
    assert all(s3.get(h) == fs.get(h) for h in hashes)


def test_prefixes_in_one_bucket_are_separate_stores(s3_env, s3_bucket):
    a = S3Store(s3_bucket, "a", endpoint_url=s3_env.endpoint)
    b = S3Store(s3_bucket, "b", endpoint_url=s3_env.endpoint)
    h = a.put(BLOB)
    assert a.has(h) and not b.has(h)
    assert list(b.iter_hashes()) == []


def test_stream_verifies_each_object_version_once(s3_env, s3_bucket, monkeypatch):
    s = S3Store(s3_bucket, "", endpoint_url=s3_env.endpoint)
    s.put(BLOB)
    calls = []
    real = S3Store._verify
    monkeypatch.setattr(S3Store, "_verify", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    for _ in range(3):
        assert b"".join(s.stream(H)[1]) == BLOB
    assert calls == []  # put verified it on the way in
    fresh = S3Store(s3_bucket, "", endpoint_url=s3_env.endpoint)  # another process
    for _ in range(3):
        assert b"".join(fresh.stream(H)[1]) == BLOB
    assert len(calls) == 1


def test_a_missing_bucket_is_a_config_error_with_the_fix(s3_env):
    with pytest.raises(ConfigError) as exc:
        S3Store("no-such-bucket-here", endpoint_url=s3_env.endpoint)
    assert "does not exist" in exc.value.message and "no-such-bucket-here" in exc.value.message
    assert "create it" in (exc.value.hint or "")
