"""Blob store in an S3 bucket (AWS S3 or any S3-compatible server), through boto3.

``s3://BUCKET/PREFIX`` keeps blob ``0xabcd…`` at the key ``PREFIX/ab/cd/abcd…`` (the hash without
``0x``): the same layout as :class:`~fedchain.store.filesystem.FilesystemStore`, so a folder store
copied into the bucket (``aws s3 sync BLOBS s3://BUCKET/PREFIX``) is a valid S3 store, and back.

- **Writes** are one ``PutObject``, which S3 makes visible whole or not at all. It is conditional
  (``If-None-Match: *``): if the key exists, the stored copy is hashed and kept when intact, and
  replaced when it is not (the filesystem store repairs a corrupted copy the same way). Two
  processes putting the same blob at once both end with the one correct object. A server without
  conditional writes (HTTP 501) gets a plain overwrite, which is as correct for a
  content-addressed key, only not free.
- **Reads**: ``get`` reads the object and re-hashes it (as every backend does). ``stream`` (what
  the API serves) hashes an object version once, by its ETag, streaming through the hash so
  the blob is never held whole in memory, and remembers it; later reads of the same ETag are
  streamed without re-hashing. A serving read pins the ETag it verified (``If-Match``), so an
  object replaced in between is never served unverified. ``read_prefix`` is a ranged GET of at
  most ``n`` bytes.
- **Errors**: a missing key is :class:`~fedchain.errors.BlobNotFound`; a missing bucket, bad
  credentials or a refused access are :class:`~fedchain.errors.ConfigError` (with the fix); a
  server that does not answer or fails (5xx) is :class:`StoreUnavailable` (HTTP 503), after
  botocore's own retries.

The endpoint is ``endpoint_url`` (``FEDCHAIN_S3_ENDPOINT``), else botocore's own configuration
(``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``), else AWS. Credentials and the
region come from botocore's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, profiles, instance roles); with a custom endpoint and no
region, ``us-east-1``. With ``FEDCHAIN_S3_ENDPOINT`` requests use path-style addressing
(``http://host/bucket/key``), which every S3-compatible server accepts.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Any, Iterator

from fedchain.errors import BlobNotFound, ConfigError, HashMismatch
from fedchain.hashing import CHUNK_SIZE, normalize_hash
from fedchain.store.base import BlobStore, StoreUnavailable

_HEX64 = re.compile(r"[0-9a-f]{64}")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "InvalidToken", "ExpiredToken", "AccountProblem"}
_CONFLICT_RETRIES = 5


class IncrementalCommitment:
    """:func:`fedchain.hashing.commitment` computed over chunks fed one at a time (any sizes), so
    a blob can be hashed while it streams in. Same result as ``commitment(b"".join(chunks))``."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._buf = bytearray()
        self._n = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._n += view.nbytes
        i = 0
        if self._buf:
            take = min(CHUNK_SIZE - len(self._buf), view.nbytes)
            self._buf += view[:take]
            i = take
            if len(self._buf) == CHUNK_SIZE:
                self._leaves.append(hashlib.sha256(b"\x00" + self._buf).digest())
                self._buf.clear()
        while view.nbytes - i >= CHUNK_SIZE:
            h = hashlib.sha256(b"\x00")
            h.update(view[i : i + CHUNK_SIZE])
            self._leaves.append(h.digest())
            i += CHUNK_SIZE
        if i < view.nbytes:
            self._buf += view[i:]

    def hexdigest(self) -> str:
        level = list(self._leaves)
        if self._buf or not level:  # the remainder, or the empty blob's one empty chunk
            level.append(hashlib.sha256(b"\x00" + self._buf).digest())
        while len(level) > 1:
            nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        root = hashlib.sha256(b"\x02" + self._n.to_bytes(8, "big") + level[0]).digest()
        return "0x" + root.hex()


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); ConfigError if malformed."""
    m = re.fullmatch(r"[sS]3://([^/?#]+)(/[^?#]*)?", url.strip())
    if m is None:
        raise ConfigError(f"not an S3 URL: {url!r}", hint="write it as s3://BUCKET or s3://BUCKET/PREFIX")
    bucket = m.group(1)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f"{bucket!r} in {url!r} is not a valid S3 bucket name",
                          hint="bucket names are 3-63 lowercase letters, digits, dots and hyphens")
    prefix = (m.group(2) or "").strip("/")
    return bucket, (prefix + "/" if prefix else "")


class S3Store(BlobStore):
    """Content-addressed blobs in ``bucket`` under ``prefix`` (see the module docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        max_bytes: int | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        check: bool = True,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.max_bytes = max_bytes
        self.endpoint_url = endpoint_url
        #: hash -> ETag of the object version whose bytes were last verified.
        self._verified: dict[str, str] = {}
        self.client = client if client is not None else self._make_client(endpoint_url, region_name)
        if check:
            self._check_bucket()

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> S3Store:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **kw)

    def __repr__(self) -> str:
        where = f", endpoint {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Store('s3://{self.bucket}/{self.prefix}'{where})"

    @staticmethod
    def _make_client(endpoint_url: str | None, region_name: str | None) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - boto3 is pinned in requirements.txt
            raise ConfigError("an s3:// blob store needs boto3", hint="pip install boto3 (pinned in requirements.txt)") from None
        region = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and endpoint_url:
            region = "us-east-1"  # S3-compatible servers ignore it, but signing needs one
        cfg = Config(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=5, read_timeout=60, max_pool_connections=32,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint_url or None, region_name=region, config=cfg)

    # --- names ---------------------------------------------------------------------------------
    def key(self, h: str) -> str:
        hex_ = normalize_hash(h)[2:]
        return f"{self.prefix}{hex_[:2]}/{hex_[2:4]}/{hex_}"

    def describe(self, h: str) -> str:
        return f"s3://{self.bucket}/{self.key(h)}"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # --- errors --------------------------------------------------------------------------------
    def _error(self, exc: Exception, what: str, h: str | None = None) -> Exception:
        """A botocore exception as the fedchain error it means."""
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ConfigError(f"no credentials for the S3 blob store {self.location}: {exc}",
                               hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile or role)")
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {}) or {}
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _NOT_FOUND and h is not None:
                return BlobNotFound(f"no blob {h} in the store at {self.location}")
            if code == "NoSuchBucket" or (code in _NOT_FOUND and h is None):
                return ConfigError(f"the S3 bucket {self.bucket!r} does not exist"
                                   + (f" at {self.endpoint_url}" if self.endpoint_url else ""),
                                   hint="create it (aws s3 mb s3://BUCKET), or fix FEDCHAIN_BLOB_URL / FEDCHAIN_S3_ENDPOINT")
            if code in _DENIED or status == 403:
                return ConfigError(f"the S3 blob store {self.location} refused {what} ({code or status}: "
                                   f"{err.get('Message', '')})",
                                   hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy "
                                        "(the aggregator needs GetObject, PutObject, DeleteObject and ListBucket)")
            return StoreUnavailable(f"the S3 blob store {self.location} failed {what}: {code or status} "
                                    f"{err.get('Message', '')}".rstrip())
        return StoreUnavailable(f"the S3 blob store {self.location} does not answer ({what}): {exc}",
                                hint="is FEDCHAIN_S3_ENDPOINT (or AWS_ENDPOINT_URL) right, and the server up?")

    def _call(self, what: str, fn: Any, h: str | None = None, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, what, h) from None

    def _check_bucket(self) -> None:
        self._call("a bucket check", self.client.head_bucket, Bucket=self.bucket)

    # --- raw operations ------------------------------------------------------------------------
    def _head(self, h: str) -> dict[str, Any]:
        return self._call(f"HEAD {h}", self.client.head_object, h, Bucket=self.bucket, Key=self.key(h))

    def _write(self, h: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(h)
        conditional = True
        for attempt in range(_CONFLICT_RETRIES):
            kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data,
                                  "ContentType": "application/octet-stream"}
            if conditional:
                kw["IfNoneMatch"] = "*"
            try:
                resp = self.client.put_object(**kw)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code == "PreconditionFailed" or status == 412:
                    if self._intact(h, len(data)):
                        return  # already stored (idempotent)
                    conditional = False  # a corrupted copy: replace it
                    continue
                if code == "ConditionalRequestConflict" or status == 409:
                    time.sleep(0.05 * (attempt + 1))  # a concurrent write of the key is in flight
                    continue
                if conditional and (code == "NotImplemented" or status == 501):
                    conditional = False  # a server without conditional writes: overwrite (same bytes)
                    continue
                raise self._error(exc, f"PUT {h}", h) from None
            except BotoCoreError as exc:
                raise self._error(exc, f"PUT {h}", h) from None
            etag = resp.get("ETag")
            if etag:
                self._verified[h] = etag  # put hashed the bytes on the way in
            return
        raise StoreUnavailable(f"the S3 blob store {self.location} kept refusing PUT {h} (conflicting writes)")

    def _intact(self, h: str, size: int) -> bool:
        """Whether the stored object for ``h`` has ``size`` bytes that hash to ``h`` (remembered)."""
        try:
            head = self._head(h)
        except BlobNotFound:
            return False
        if int(head["ContentLength"]) != size:
            return False
        try:
            etag = self._verify(h)
        except (BlobNotFound, HashMismatch):
            return False
        return etag is not None

    def _get(self, h: str, **kw: Any) -> dict[str, Any]:
        return self._call(f"GET {h}", self.client.get_object, h, Bucket=self.bucket, Key=self.key(h), **kw)

    @staticmethod
    def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            while True:
                chunk = body.read(chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _read(self, h: str) -> bytes:
        resp = self._get(h)
        body = resp["Body"]
        try:
            return body.read()  # botocore checks the length against Content-Length
        except Exception as exc:  # noqa: BLE001 - a transfer cut short
            raise StoreUnavailable(f"reading {self.describe(h)} failed: {exc}") from None
        finally:
            body.close()

    def has(self, h: str) -> bool:
        try:
            self._head(normalize_hash(h))
            return True
        except BlobNotFound:
            return False

    def size(self, h: str) -> int:
        return int(self._head(normalize_hash(h))["ContentLength"])

    def delete(self, h: str) -> None:
        h = normalize_hash(h)
        self._head(h)  # BlobNotFound if absent (DeleteObject itself succeeds either way)
        self._verified.pop(h, None)
        self._call(f"DELETE {h}", self.client.delete_object, h, Bucket=self.bucket, Key=self.key(h))

    def iter_hashes(self) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []) or []:
                    rest = obj["Key"][len(self.prefix):]
                    parts = rest.split("/")
                    if (len(parts) == 3 and _HEX64.fullmatch(parts[2])
                            and parts[0] == parts[2][:2] and parts[1] == parts[2][2:4]):
                        yield "0x" + parts[2]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "LIST") from None

    # --- verified streaming --------------------------------------------------------------------
    def _verify(self, h: str, etag: str | None = None) -> str:
        """Hash the stored object (the version ``etag``, if given) while streaming it; its ETag.
        HashMismatch if the bytes do not hash to ``h``."""
        kw = {"IfMatch": etag} if etag else {}
        resp = self._get(h, **kw)
        got = resp.get("ETag") or ""
        hasher = IncrementalCommitment()
        size = 0
        try:
            for chunk in self._chunks(resp["Body"], CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        except Exception as exc:  # noqa: BLE001 - a transfer cut short
            raise StoreUnavailable(f"reading {self.describe(h)} failed: {exc}") from None
        actual = hasher.hexdigest()
        if actual != h:
            self._verified.pop(h, None)
            raise HashMismatch(
                f"stored blob {h} is corrupted: its {size} bytes hash to {actual}",
                hint=f"delete it from the store ({self.describe(h)}) and upload it again",
            )
        self._verified[h] = got
        return got

    def stream(self, h: str, *, chunk_size: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
        """Size and chunks of blob ``h``, verified before the first chunk. An object version (ETag)
        verified before is streamed from one GET; another is first hashed as it streams past (never
        held whole), then served by a second GET pinned to the ETag it verified."""
        from botocore.exceptions import ClientError

        h = normalize_hash(h)
        for _ in range(3):
            resp = self._get(h)
            etag = resp.get("ETag") or ""
            if etag and self._verified.get(h) == etag:
                return int(resp["ContentLength"]), self._chunks(resp["Body"], chunk_size)
            resp["Body"].close()
            etag = self._verify(h, etag or None)
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=self.key(h), IfMatch=etag)
            except ClientError as exc:
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if status == 412:
                    continue  # replaced between the two reads: verify the new version
                raise self._error(exc, f"GET {h}", h) from None
            return int(resp["ContentLength"]), self._chunks(resp["Body"], chunk_size)
        raise StoreUnavailable(f"{self.describe(h)} kept changing while it was read")

    def read_prefix(self, h: str, n: int) -> bytes:
        from botocore.exceptions import ClientError

        h = normalize_hash(h)
        if n <= 0:
            self._head(h)
            return b""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key(h), Range=f"bytes=0-{n - 1}")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "InvalidRange":  # the empty blob: no byte 0
                self._head(h)
                return b""
            raise self._error(exc, f"GET {h}", h) from None
        body = resp["Body"]
        try:
            return body.read(n)[:n]
        finally:
            body.close()
