"""The one HTTP client for the aggregator API: used by nodes, ``fedchain verify`` and ``fedchain rounds``.

Every blob is fetched the same way (:meth:`ApiClient.blob`): streamed with a byte limit (the read
stops at the limit, the body is never held whole before the check) and hashed here against the
name, since the API is not trusted. Sealed update blobs are read with a signed ``BlobRead``
permission when the client has a key. Transient failures (connection refused, 5xx, 429) are
retried with capped backoff for ``retry_seconds``, and each retry is logged; a URL where no
fedchain API answers gives one line that names ``--api-url``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Callable

import httpx
from eth_account.signers.local import LocalAccount

from fedchain.auth import READ_HEADER, sign_blob_read
from fedchain.chain.deployment import Deployment
from fedchain.errors import BlobNotFound, BlobTooLarge, FedchainError, Forbidden, HashMismatch
from fedchain.hashing import commitment
from fedchain.retry import DEFAULT_RETRY_SECONDS, TransientHTTPError, with_retry

#: The header that carries a BlobRead permission's expiry (unix seconds).
READ_EXPIRES_HEADER = "X-Fedchain-Read-Expires"
#: How long a signed read permission is valid.
READ_PERMISSION_SECONDS = 300


class ApiUnavailable(FedchainError):
    """No fedchain API answers at the URL."""

    exit_code = 3


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        log: Callable[[str], None] = print,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        timeout: float = 30.0,
        reader: LocalAccount | None = None,
        chain_id: int | None = None,
        contract: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.log = log
        self.retry_seconds = retry_seconds
        #: The key that signs sealed-blob reads (a node's or an auditor's), and its domain.
        self.reader = reader
        self.chain_id = chain_id
        self.contract = contract

    def close(self) -> None:
        self.http.close()

    def _unreachable(self, exc: Exception) -> ApiUnavailable:
        return ApiUnavailable(
            f"cannot reach the API at {self.base_url} ({type(exc).__name__})",
            hint="check --api-url (FEDCHAIN_API_URL): it is the aggregator's URL, e.g. http://127.0.0.1:8000",
        )

    def _retrying(self, what: str, once: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                return once()
            except httpx.TransportError:
                raise
            except httpx.HTTPError as exc:  # protocol errors: not a fedchain API
                raise self._unreachable(exc) from exc

        try:
            return with_retry(guarded, what, timeout=self.retry_seconds, log=self.log)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        except TransientHTTPError as exc:
            raise ApiUnavailable(f"{what}: {exc}", hint="the aggregator is failing; check its log") from exc

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; 5xx and 429 are retried like transport errors."""

        def once() -> httpx.Response:
            r = self.http.request(method, path, **kw)
            if r.status_code >= 500 or r.status_code == 429:
                raise TransientHTTPError(f"HTTP {r.status_code} from {self.base_url}{path}")
            return r

        return self._retrying(f"{method} {self.base_url}{path}", once)

    def get_json(self, path: str, **params: Any) -> Any:
        r = self.request("GET", path, params=params or None)
        if r.status_code != 200:
            raise FedchainError(f"{self.base_url}{path} answered HTTP {r.status_code}: {error_detail(r)}",
                                hint="is --api-url a fedchain aggregator?")
        try:
            return r.json()
        except ValueError as exc:
            raise ApiUnavailable(f"{self.base_url}{path} did not answer JSON",
                                 hint="is --api-url the fedchain aggregator, not the chain's RPC URL?") from exc

    def _read_headers(self, h: str) -> dict[str, str]:
        if self.reader is None or self.chain_id is None or self.contract is None:
            return {}
        expires = int(time.time()) + READ_PERMISSION_SECONDS
        return {READ_HEADER: sign_blob_read(self.reader, self.chain_id, self.contract, h, expires),
                READ_EXPIRES_HEADER: str(expires)}

    def blob(self, h: str, *, max_bytes: int) -> bytes:
        """The blob named ``h``, read at most ``max_bytes`` and checked to hash to ``h``.
        BlobNotFound (404), Forbidden (sealed, or not allowed), BlobTooLarge, HashMismatch."""

        def once() -> bytes:
            with self.http.stream("GET", f"/blobs/{h}", headers=self._read_headers(h)) as r:
                if r.status_code == 503:
                    r.read()
                    if error_reason(r) == "corrupted":  # the server's copy fails its own hash check
                        raise HashMismatch(f"the API's copy of {h} is corrupted: {error_detail(r)}")
                if r.status_code >= 500 or r.status_code == 429:
                    raise TransientHTTPError(f"HTTP {r.status_code} from {self.base_url}/blobs/{h}")
                if r.status_code == 404:
                    raise BlobNotFound(f"the API at {self.base_url} has no blob {h}",
                                       hint="is --api-url the aggregator of this chain's federation?")
                if r.status_code in (401, 403):
                    r.read()
                    raise Forbidden(f"the API refuses blob {h}: {error_detail(r)}",
                                    hint="update blobs are sealed until the round closes, then readable by "
                                         "registered nodes and auditors: pass a key (--keystore/--dev-account)")
                if r.status_code != 200:
                    r.read()
                    raise FedchainError(f"blob {h}: the API answered HTTP {r.status_code}: {error_detail(r)}")
                buf = bytearray()
                for chunk in r.iter_bytes():
                    buf += chunk
                    if len(buf) > max_bytes:
                        raise BlobTooLarge(f"blob {h} is over the {max_bytes}-byte limit; stopped reading")
            data = bytes(buf)
            actual = commitment(data)
            if actual != h:
                raise HashMismatch(f"the API served bytes for {h} that hash to {actual}")
            return data

        return self._retrying(f"GET {self.base_url}/blobs/{h[:12]}…", once)

    def events(self, *, read_timeout: float = 45.0,
               on_open: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Round events pushed by the API (``GET /events``) until the stream ends; ``on_open`` is
        called once the stream is open. One attempt, no retry: the caller reconnects.
        ``read_timeout`` exceeds the server's keep-alive interval, so a silent dead connection is
        noticed. httpx errors propagate."""
        timeout = httpx.Timeout(10.0, read=read_timeout)
        with self.http.stream("GET", "/events", timeout=timeout, headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200 or not r.headers.get("content-type", "").startswith("text/event-stream"):
                raise TransientHTTPError(f"GET /events answered HTTP {r.status_code}")
            if on_open is not None:
                on_open()
            yield from parse_events(bounded_lines(r.iter_bytes()))

    def deployment(self) -> Deployment:
        return Deployment.from_json(self.get_json("/deployment"))

    def upload(self, round_id: int, blob_hash: str, data: bytes, signature: str) -> httpx.Response:
        return self.request("PUT", f"/rounds/{round_id}/updates/{blob_hash}", content=data,
                            headers={"X-Fedchain-Signature": signature, "Content-Type": "application/octet-stream"})

    def upload_unmask(self, round_id: int, blob_hash: str, data: bytes, signature: str,
                      relay_signature: str | None = None) -> httpx.Response:
        headers = {"X-Fedchain-Signature": signature, "Content-Type": "application/octet-stream"}
        if relay_signature:
            headers["X-Fedchain-Relay-Signature"] = relay_signature
        return self.request("PUT", f"/rounds/{round_id}/unmask/{blob_hash}", content=data, headers=headers)

    def post_commitment(self, round_id: int, update_hash: str, num_samples: int, signature: str) -> httpx.Response:
        return self.request("POST", f"/rounds/{round_id}/commitments",
                            json={"update_hash": update_hash, "num_samples": int(num_samples), "signature": signature})


#: The longest line an event stream may send (an event is well under 200 bytes).
MAX_EVENT_LINE = 4096


def bounded_lines(chunks: Iterator[bytes], max_line: int = MAX_EVENT_LINE) -> Iterator[str]:
    """Lines of a byte stream (``\\n`` or ``\\r\\n`` ended), never buffering more than ``max_line``
    bytes: a longer line is a TransientHTTPError (the stream is not one this client speaks)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line.removesuffix(b"\r").decode("utf-8", errors="replace")
        if len(buf) > max_line:
            raise TransientHTTPError(f"an event stream line over {max_line} bytes")


def parse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The ``round`` events of a server-sent event stream (``GET /events``), as dicts. Lines over
    :data:`MAX_EVENT_LINE`, data that is not a JSON object, comments and other events are skipped."""
    kind, data = "message", ""
    for line in lines:
        if len(line) > MAX_EVENT_LINE:
            kind, data = "message", ""
            continue
        if line == "":
            if kind == "round" and data:
                try:
                    event = json.loads(data)
                except ValueError:
                    event = None
                if isinstance(event, dict) and isinstance(event.get("round"), int):
                    yield event
            kind, data = "message", ""
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def error_reason(r: httpx.Response) -> str | None:
    """The ``reason`` code of a fedchain error body, if any."""
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("reason") if isinstance(body, dict) else None


def error_detail(r: httpx.Response) -> str:
    """The ``reason: detail`` of a fedchain error body, or the start of the text."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict):
        reason, detail = body.get("reason"), body.get("detail")
        if reason or detail:
            return f"{reason}: {detail}" if reason else str(detail)
    return str(body)[:200]

