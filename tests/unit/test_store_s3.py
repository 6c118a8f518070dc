"""The S3 store's parts that need no server: the streaming commitment, S3 URLs, configuration and
an endpoint that does not answer. The store against a real S3 server: tests/scale/test_scale_store.py."""

from __future__ import annotations

import random
import time

import pytest

from fedchain.errors import ConfigError
from fedchain.hashing import CHUNK_SIZE, commitment
from fedchain.settings import Settings
from fedchain.store import FilesystemStore, StoreUnavailable, open_store, store_from_settings
from fedchain.store.s3 import IncrementalCommitment, parse_s3_url


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5,
                                  4 * CHUNK_SIZE])
def test_incremental_commitment_equals_commitment_whatever_the_chunking(size):
    rng = random.Random(size)
    data = rng.randbytes(size)
    for pieces in ([data], [data[i : i + 4096] for i in range(0, size, 4096)],
                   [data[i : i + CHUNK_SIZE + 7] for i in range(0, size, CHUNK_SIZE + 7)]):
        h = IncrementalCommitment()
        for p in pieces:
            h.update(p)
        assert h.hexdigest() == commitment(data)
    cuts = sorted(rng.randrange(size + 1) for _ in range(5))
    h = IncrementalCommitment()
    for a, b in zip([0, *cuts], [*cuts, size]):
        h.update(memoryview(data)[a:b])
    assert h.hexdigest() == commitment(data)


@pytest.mark.parametrize("url,bucket,prefix", [
    ("s3://fedchain-blobs", "fedchain-blobs", ""),
    ("s3://fedchain-blobs/", "fedchain-blobs", ""),
    ("s3://fedchain-blobs/prod/blobs", "fedchain-blobs", "prod/blobs/"),
    ("S3://my.bucket-1//a/b//", "my.bucket-1", "a/b/"),
])
def test_s3_urls(url, bucket, prefix):
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3://UPPER", "s3://ab", "s3://bucket_underscore/x", "s3:/bucket"])
def test_bad_s3_urls_are_config_errors(url):
    with pytest.raises(ConfigError):
        parse_s3_url(url)


def test_an_s3_endpoint_that_does_not_answer_is_store_unavailable(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    t = time.monotonic()
    with pytest.raises(StoreUnavailable) as exc:
        open_store("s3://fedchain-blobs/p", s3_endpoint="http://127.0.0.1:9")
    assert exc.value.http_status == 503
    assert "does not answer" in exc.value.message and "FEDCHAIN_S3_ENDPOINT" in exc.value.hint
    assert time.monotonic() - t < 30


def test_the_aggregator_store_comes_from_the_settings(tmp_path):
    s = Settings(data_dir=tmp_path / "data")
    default = store_from_settings(s)
    assert isinstance(default, FilesystemStore) and default.root == tmp_path / "data" / "blobs"
    assert default.max_bytes == s.max_blob_bytes
    folder = store_from_settings(s.model_copy(update={"blob_url": f"file://{tmp_path / 'elsewhere'}"}))
    assert isinstance(folder, FilesystemStore) and folder.root == tmp_path / "elsewhere"


def test_blob_url_and_s3_endpoint_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FEDCHAIN_BLOB_URL", "s3://fedchain-blobs/x")
    monkeypatch.setenv("FEDCHAIN_S3_ENDPOINT", "http://127.0.0.1:9000")
    s = Settings()
    assert (s.blob_url, s.s3_endpoint) == ("s3://fedchain-blobs/x", "http://127.0.0.1:9000")
