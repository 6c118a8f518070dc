"""The API's policy: who may upload what and when, who may read which blob, what may be relayed.

Routers only translate HTTP to these calls and back; every rule lives here, in the order that
docs/api.md documents, and every refusal is a :class:`~fedchain.errors.FedchainError` with a
machine-readable ``reason`` (the error body's ``reason`` field).

- :class:`UploadPolicy`: ``PUT /rounds/{id}/updates/{hash}``. :meth:`UploadPolicy.admit` runs every
  check that needs no body byte (so a stranger never makes the service read or hash a body),
  :meth:`UploadPolicy.read_body` reads it under a byte limit and timeouts, and
  :meth:`UploadPolicy.accept` checks the bytes, stores them and signs the receipt.
- :class:`BlobAccess`: ``GET``/``HEAD /blobs/{hash}``. Update blobs are sealed while their round is
  open, then readable by members (signed ``BlobRead``) or by anyone if the round config says so.
- :class:`RelayPolicy`: ``POST /rounds/{id}/commitments``, the gasless commit path.

Result-affecting limits (the update size limit, the sample cap, who may read updates) come from
the round's committed config (:class:`~fedchain.aggregator.config.RoundRules`) or the chain, and
deadlines are judged by chain time (``block_timestamp``), never by the local clock. The only local
settings here are transport timeouts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from eth_account.signers.local import LocalAccount
from sqlalchemy.exc import IntegrityError
from starlette.requests import ClientDisconnect

from fedchain.aggregator.config import MAX_CONFIG_BYTES, RoundRules
from fedchain.aggregator.relay import RelayQueue, SignedCommitment
from fedchain.api.errors import ServiceUnavailable, with_reason
from fedchain.api.schemas import CommitmentIn, CommitmentOut, ReceiptOut, UploadOut
from fedchain.auth import (
    READ_HEADER,
    SIGNATURE_HEADER,
    recover_blob_reader,
    recover_commitment_signer,
    recover_upload_signer,
    sign_receipt,
)
from fedchain.chain.types import ChainReader, RoundInfo, RoundStatus
from fedchain.codec import MAX_HEADER_BYTES, UpdateIdentity, decode_json, decode_tensors, decode_update, tensor_spec
from fedchain.secure.blob import decode_masked_update
from fedchain.errors import (
    AuthError,
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    Conflict,
    FedchainError,
    Forbidden,
    HashMismatch,
    InvalidBlob,
    NotFound,
)
from fedchain.hashing import commitment
from fedchain.index import Indexer, Upload
from fedchain.index.models import Round
from fedchain.store import BlobStore

log = logging.getLogger(__name__)

#: The header with a sealed read's expiry (unix seconds), signed in ``BlobRead``.
READ_EXPIRES_HEADER = "X-Fedchain-Read-Expires"
#: Longest a read permission may run ahead of the server's clock.
MAX_READ_PERMISSION_SECONDS = 3600
#: The on-chain role whose holders may read sealed update blobs once their round closed.
AUDITOR_ROLE = "AUDITOR_ROLE"

_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_SIG_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{130}")


# --- errors the policy adds ------------------------------------------------------------------------
class UploadTimeout(FedchainError):
    """The upload body stalled or took too long; nothing was stored."""

    http_status = 408
    headers = {"Connection": "close"}


class ClientGone(FedchainError):
    """The client disconnected mid-request (it never sees this answer)."""

    http_status = 400


class TooManySamples(FedchainError):
    """A commitment declares more samples than the round allows."""

    http_status = 422


def _err(exc: FedchainError, reason: str) -> FedchainError:
    return with_reason(exc, reason)


def parse_hash(value: str) -> str:
    """The canonical (lowercase) form of a blob hash ``0x`` + 64 hex digits; 400 ``bad_hash``."""
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise _err(BlobError(f"not a blob hash: {shown!r}", hint="a blob hash is 0x followed by 64 hex digits"),
                   "bad_hash")
    return value.lower()


# --- caches ----------------------------------------------------------------------------------------
K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A small thread-safe LRU map (immutable facts by content hash)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get_or(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: may read a blob
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class RulesCache:
    """:class:`RoundRules` of each round config, by config hash (a config never changes)."""

    def __init__(self, size: int = 64) -> None:
        self._cache: LruCache[str, RoundRules] = LruCache(size)

    def get(self, store: BlobStore, config_hash: str) -> RoundRules:
        return self._cache.get_or(config_hash.lower(), lambda: self._load(store, config_hash.lower()))

    @staticmethod
    def _load(store: BlobStore, h: str) -> RoundRules:
        try:
            if store.size(h) > MAX_CONFIG_BYTES:
                raise _err(ServiceUnavailable(f"the round config {h} is over {MAX_CONFIG_BYTES} bytes"), "bad_config")
            data = store.get(h)
        except BlobNotFound as exc:
            raise _err(
                ServiceUnavailable(f"the round config {h} is not in this aggregator's store",
                                   hint="the aggregator stores each config before it opens the round; retry later"),
                "config_missing",
            ) from exc
        except HashMismatch as exc:
            raise _err(ServiceUnavailable(f"stored round config {h} is corrupted"), "corrupted") from exc
        try:
            return RoundRules.of(decode_json(data, max_bytes=MAX_CONFIG_BYTES))
        except InvalidBlob as exc:
            raise _err(ServiceUnavailable(f"the round config {h} is unusable: {exc.message}"), "bad_config") from exc


class SpecCache:
    """Tensor specs (name -> shape) of base models, by hash."""

    def __init__(self, size: int = 8) -> None:
        self._cache: LruCache[str, dict[str, tuple[int, ...]]] = LruCache(size)

    def get(self, store: BlobStore, model_hash: str, max_bytes: int) -> dict[str, tuple[int, ...]]:
        return self._cache.get_or(model_hash, lambda: self._load(store, model_hash, max_bytes))

    @staticmethod
    def _load(store: BlobStore, model_hash: str, max_bytes: int) -> dict[str, tuple[int, ...]]:
        try:
            data = store.get(model_hash)
        except BlobNotFound as exc:
            raise _err(
                ServiceUnavailable(
                    f"the round's base model {model_hash} is not in this aggregator's store",
                    hint="the aggregator stores each base model before it opens the round; retry later",
                ),
                "base_model_missing",
            ) from exc
        except HashMismatch as exc:
            raise _err(ServiceUnavailable(f"stored base model {model_hash} is corrupted"), "corrupted") from exc
        try:
            arrays = decode_tensors(data, max_bytes=max(max_bytes, len(data)))
        except InvalidBlob as exc:
            raise _err(ServiceUnavailable(f"the round's base model {model_hash} is unusable: {exc.message}"),
                       "bad_base_model") from exc
        return {k: tuple(v) for k, v in tensor_spec(arrays).items()}


@dataclass(frozen=True)
class BlobKind:
    """What a stored blob is, from its own bytes. Update blobs name their round in their
    safetensors ``__metadata__`` (``fedchain.codec.UpdateIdentity``); nothing else has metadata."""

    update: bool
    round_id: int | None = None  # None for an update whose round cannot be read (kept sealed)


class KindCache:
    """:class:`BlobKind` by hash, sniffed from the blob's first bytes once (content never changes)."""

    def __init__(self, size: int = 4096) -> None:
        self._cache: LruCache[str, BlobKind] = LruCache(size)

    def get(self, store: BlobStore, h: str) -> BlobKind:
        return self._cache.get_or(h, lambda: sniff_kind(store, h))


def sniff_kind(store: BlobStore, h: str) -> BlobKind:
    """An update blob is a safetensors file whose header has ``__metadata__``. JSON blobs (configs,
    reports) start with printable text, whose first 8 bytes read as a huge header length."""
    head = store.read_prefix(h, 8)
    if len(head) < 8:
        return BlobKind(update=False)
    n = int.from_bytes(head, "little")
    if n < 2 or n > MAX_HEADER_BYTES:
        return BlobKind(update=False)
    raw = store.read_prefix(h, 8 + n)[8:]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return BlobKind(update=False)
    if not isinstance(header, dict) or "__metadata__" not in header:
        return BlobKind(update=False)
    meta = header["__metadata__"]
    rnd = meta.get("round") if isinstance(meta, dict) else None
    if isinstance(rnd, str) and rnd.isdigit() and len(rnd) <= 20:
        return BlobKind(update=True, round_id=int(rnd))
    return BlobKind(update=True, round_id=None)


# --- shared checks ---------------------------------------------------------------------------------
def open_round(chain: ChainReader, round_id: int) -> RoundInfo:
    """The round, which must exist (404 ``unknown_round``) and be open on-chain (409
    ``round_not_open``). An open round is the current round: the contract opens the next round
    only once the current one is closed (ITrainingRounds: "at most one round is open at a
    time"), so no ``currentRoundId`` read is needed on this path."""
    try:
        info = chain.get_round(round_id)
    except NotFound as exc:
        raise _err(NotFound(f"round {round_id} does not exist", hint="GET /rounds lists the rounds"),
                   "unknown_round") from exc
    if info.status == RoundStatus.NONE:
        raise _err(NotFound(f"round {round_id} does not exist", hint="GET /rounds lists the rounds"), "unknown_round")
    if info.status != RoundStatus.OPEN:
        raise _err(Conflict(f"round {round_id} is {info.status.label}, not open",
                            hint="upload to the current open round"), "round_not_open")
    return info


def require_eligible(chain: ChainReader, round_id: int, signer: str, what: str) -> None:
    """403 ``not_eligible`` unless ``signer`` may commit in ``round_id`` (``isEligible``: active,
    admitted before the round opened, and selected if the round samples)."""
    if not chain.is_eligible(round_id, signer):  # type: ignore[attr-defined]
        raise _err(
            Forbidden(
                f"the {what} signature recovers to {signer}, which is not eligible in round {round_id} "
                f"(not an active node, admitted while the round was open, not selected, or the signature "
                f"was made for another round, chain, contract or message)",
                hint=f"sign for round {round_id}, chain {chain.chain_id} and contract {chain.rounds_address} "
                f"with the key of a node admitted before the round opened",
            ),
            "not_eligible",
        )


# --- uploads ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadTicket:
    """An upload that passed every check that needs no body byte."""

    round_id: int
    blob_hash: str
    signer: str
    limit: int
    base_model_hash: str
    config_hash: str = ""


class UploadPolicy:
    """The signed upload of a node's update. Checks, in order (the first failure answers):

    1. ``X-Fedchain-Signature`` present and 65 bytes of hex: 401 ``missing_signature`` / ``bad_signature``
    2. ``blob_hash`` is ``0x`` + 64 hex digits: 400 ``bad_hash``
    3. the round exists: 404 ``unknown_round``; it is open and current: 409 ``round_not_open``
    4. chain time (latest block) is not past the deadline: 409 ``upload_closed``
    5. declared ``Content-Length`` within the config's ``limits.max_update_bytes``: 413 ``too_large``
    6. the signature recovers (401 ``bad_signature``) to a node eligible in the round (403 ``not_eligible``)
    7. the node has no other blob for the round, uploaded or committed on-chain: 409 ``duplicate``
    8. the body arrives in time (408 ``upload_timeout``) and within the limit (413 ``too_large``)
    9. the body hashes to ``blob_hash``: 400 ``hash_mismatch``
    10. the body is this node's update for this round, shaped like the base model: 422 with
        ``not_own_update``, ``malformed``, ``wrong_names``, ``wrong_shape``, ``wrong_dtype``,
        ``non_finite``, ``too_large``

    Steps 1 to 7 read no body byte. Then the blob is stored and indexed: 201, or 200 when the same
    node uploads the same blob again. Both answers carry the signed receipt.
    """

    def __init__(
        self,
        *,
        chain: ChainReader,
        store: BlobStore,
        indexer: Indexer,
        rules: RulesCache,
        specs: SpecCache,
        signer: LocalAccount | None,
        read_timeout: float,
        body_timeout: float,
        on_stored: Callable[[int], None] | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.indexer = indexer
        self.rules = rules
        self.specs = specs
        self.signer = signer
        self.read_timeout = float(read_timeout)
        self.body_timeout = float(body_timeout)
        #: Called with the round after a new upload is stored (the round loop looks again: the
        #: node's commitment follows within a transaction's time).
        self.on_stored = on_stored

    # 1.
    @staticmethod
    def check_signature_format(value: str | None) -> str:
        hint = f"sign Upload(round, blobHash) with EIP-712 (docs/api.md) and send it in {SIGNATURE_HEADER}"
        if value is None or not value.strip():
            raise _err(AuthError("the upload is not signed", hint=hint), "missing_signature")
        sig = value.strip()
        if _SIG_RE.fullmatch(sig) is None:
            raise _err(AuthError(f"{SIGNATURE_HEADER} is not a 65-byte hex signature", hint=hint), "bad_signature")
        return sig

    def admit(self, *, round_id: int, blob_hash: str, signature: str | None, content_length: str | None) -> UploadTicket:
        """Steps 1 to 7 (blocking chain and index reads: run it in a worker thread)."""
        sig = self.check_signature_format(signature)
        h = parse_hash(blob_hash)
        info = open_round(self.chain, round_id)
        now = self.chain.block_timestamp()
        if now > info.deadline:
            raise _err(
                Conflict(f"uploads for round {round_id} closed at its deadline {info.deadline} (chain time is {now})",
                         hint="wait for the next round"),
                "upload_closed",
            )
        limit = self.rules.get(self.store, info.config_hash).max_update_bytes
        declared = (content_length or "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise too_large(limit, int(declared))
        try:
            signer = recover_upload_signer(sig, self.chain.chain_id, self.chain.rounds_address, round_id, h)
        except AuthError as exc:
            raise _err(exc, "bad_signature") from None
        require_eligible(self.chain, round_id, signer, "upload")
        with self.indexer.session() as s:
            prev = s.get(Upload, (round_id, signer))
            if prev is not None and prev.blob_hash != h:
                raise _err(Conflict(f"{signer} already uploaded {prev.blob_hash} for round {round_id}",
                                    hint="one update per node per round"), "duplicate")
        committed = self.chain.get_commitment(round_id, signer)
        if committed is not None and committed.update_hash.lower() != h:
            raise _err(Conflict(f"{signer} already committed {committed.update_hash} on-chain for round {round_id}",
                                hint="one update per node per round"), "duplicate")
        return UploadTicket(round_id=round_id, blob_hash=h, signer=signer, limit=limit,
                            base_model_hash=info.base_model_hash, config_hash=info.config_hash)

    async def read_body(self, ticket: UploadTicket, chunks: AsyncIterator[bytes]) -> bytes:
        """Step 8. A disconnect is logged as one line and raises :class:`ClientGone`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.body_timeout
        it = chunks.__aiter__()
        buf = bytearray()
        while True:
            left = end - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(it.__anext__(), timeout=min(self.read_timeout, left))
            except StopAsyncIteration:
                return bytes(buf)
            except TimeoutError:
                what = "stalled" if left > self.read_timeout else "took too long"
                log.info("round %s: upload of %s by %s %s after %d bytes; refused with 408",
                         ticket.round_id, ticket.blob_hash, ticket.signer, what, len(buf))
                raise _err(UploadTimeout(
                    f"the upload body {what} ({len(buf)} bytes received; the server waits {self.read_timeout:g} s "
                    f"for each chunk and {self.body_timeout:g} s for the whole body)",
                    hint="retry on a steadier connection"), "upload_timeout") from None
            except ClientDisconnect:
                log.info("round %s: upload of %s by %s abandoned: client disconnected after %d bytes",
                         ticket.round_id, ticket.blob_hash, ticket.signer, len(buf))
                raise _err(ClientGone("the client disconnected"), "client_disconnected") from None
            buf += chunk
            if len(buf) > ticket.limit:
                raise too_large(ticket.limit)

    def accept(self, ticket: UploadTicket, body: bytes) -> tuple[UploadOut, bool]:
        """Steps 9 and 10, then store and index. Returns (answer, created)."""
        h, round_id, signer = ticket.blob_hash, ticket.round_id, ticket.signer
        actual = commitment(body)
        if actual != h:
            raise _err(HashMismatch(f"the body hashes to {actual}, not {h}",
                                    hint="name the upload by fedchain.hashing.commitment(bytes) of exactly the bytes sent"),
                       "hash_mismatch")
        result = UploadOut(round=round_id, node=signer, blob_hash=h, size=len(body), receipt=self.receipt(round_id, signer, h))
        with self.indexer.session() as s:
            prev = s.get(Upload, (round_id, signer))
            if prev is not None:
                if prev.blob_hash == h:
                    return result, False  # the same upload again: idempotent
                raise _err(Conflict(f"{signer} already uploaded {prev.blob_hash} for round {round_id}",
                                    hint="one update per node per round"), "duplicate")
        spec = self.specs.get(self.store, ticket.base_model_hash, ticket.limit)
        identity = UpdateIdentity(self.chain.chain_id, self.chain.rounds_address, round_id, signer)
        rules = self.rules.get(self.store, ticket.config_hash) if ticket.config_hash else None
        if rules is not None and rules.is_secure:
            # A masked update: only its form can be checked (names, shapes, integer dtype, the
            # share bundle for the round's secure set, the sender). InvalidBlob -> 422.
            n = len(secure_set_of(self.chain, round_id))
            decode_masked_update(body, config=rules.secure.fixed, identity=identity, expected=spec, n_selected=n,
                                 max_bytes=ticket.limit)
        else:
            decode_update(body, identity=identity, expected=spec, max_bytes=ticket.limit)  # InvalidBlob -> 422
        self.store.put(body, expected_hash=h)
        with self.indexer.session() as s:
            s.add(Upload(round_id=round_id, node=signer, blob_hash=h, size=len(body),
                         received_at=datetime.now(timezone.utc)))
            try:
                s.commit()
            except IntegrityError:  # a concurrent upload by the same node won the race
                s.rollback()
                prev = s.get(Upload, (round_id, signer))
                if prev is not None and prev.blob_hash == h:
                    return result, False
                raise _err(Conflict(f"{signer} already uploaded another blob for round {round_id}"),
                           "duplicate") from None
        log.info("round %s: %s uploaded %s (%d bytes)", round_id, signer, h, len(body))
        if self.on_stored is not None:
            self.on_stored(round_id)
        return result, True

    def receipt(self, round_id: int, node: str, blob_hash: str) -> ReceiptOut | None:
        if self.signer is None:
            return None
        sig = sign_receipt(self.signer, self.chain.chain_id, self.chain.rounds_address, round_id, node, blob_hash)
        return ReceiptOut(round=round_id, node=node, blob_hash=blob_hash, signer=self.signer.address, signature=sig)


def selected_of(chain: ChainReader, round_id: int) -> tuple[list[str], dict[str, bytes]]:
    """A round's selected set and the keys in effect (``ChainClient.selected_set``), cached: they
    never change once the round is open."""
    got = _SELECTED.get(round_id)
    if got is not None and got[0] == (chain.chain_id, chain.rounds_address):
        return got[1]
    with _ROUND_CACHE_LOCK:  # ten uploads arriving together: one of them reads the chain
        got = _SELECTED.get(round_id)
        if got is not None and got[0] == (chain.chain_id, chain.rounds_address):
            return got[1]
        value = chain.selected_set(chain.get_round(round_id))  # type: ignore[attr-defined]
        if len(_SELECTED) > 64:
            _SELECTED.clear()
        _SELECTED[round_id] = ((chain.chain_id, chain.rounds_address), value)
        return value


def secure_set_of(chain: ChainReader, round_id: int) -> list[str]:
    """The secure set S of a round: its selected nodes with a valid X25519 key."""
    from fedchain.secure.keys import is_valid_public_key

    selected, keys = selected_of(chain, round_id)
    return [a for a in selected if is_valid_public_key(keys.get(a, b""))]


_SELECTED: dict[int, tuple[tuple[int, str], tuple[list[str], dict[str, bytes]]]] = {}
#: Serialises filling _SELECTED and _SEALED, so that concurrent uploads of one round do not each
#: replay its events (they wait for the first, then read the cache).
_ROUND_CACHE_LOCK = threading.RLock()
_SEALED: dict[tuple[int, str, int, int], tuple[int, list[str], tuple[list[str], dict[str, bytes]]]] = {}


class UnmaskUploadPolicy:
    """The signed upload of a survivor's unmasking blob in a secure round. Checks, in order:

    1. the signature is 65 bytes of hex (401 ``missing_signature`` / ``bad_signature``), the hash
       ``0x`` + 64 hex (400 ``bad_hash``)
    2. the round exists, is open and current (404 ``unknown_round`` / 409 ``round_not_open``) and
       secure (409 ``not_secure``); its commit phase is sealed (409 ``not_sealed``) and the unmask
       deadline has not passed by chain time (409 ``unmask_closed``)
    3. the body is at most the round's ``limits.max_update_bytes`` (413 ``too_large``) and
       hashes to ``blob_hash`` (400 ``hash_mismatch``)
    4. the signature (``Upload(round, blobHash)``) recovers to a survivor of the seal (403 ``not_survivor``)
    5. the body is that survivor's unmasking blob for the on-chain set, revealing exactly what
       the set implies (422 ``not_own_update``, ``wrong_committed_set``, ``wrong_reveals``, ``malformed``)

    Then it is stored (201; 200 for the same blob again). Its hash goes on-chain with ``submitUnmask``,
    or, for a node without ETH, with the aggregator's ``submitUnmaskBatch``: the node sends its
    ``Unmask(roundId, unmaskHash)`` signature in ``X-Fedchain-Relay-Signature`` (401 ``bad_signature``
    if it does not recover to the same survivor; 409 ``relay_closed`` after ``unmaskDeadline -
    relayCutoff``, when the node posts directly), and the answer says ``relay: "queued"``.
    """

    def __init__(self, *, chain: ChainReader, store: BlobStore, rules: RulesCache, relay: RelayQueue | None = None) -> None:
        self.chain, self.store, self.rules, self.relay = chain, store, rules, relay

    def accept(self, *, round_id: int, blob_hash: str, signature: str | None, body: bytes,
               relay_signature: str | None = None) -> tuple[dict[str, Any], bool]:
        from fedchain.secure.keys import RoundContext as SecureContext
        from fedchain.secure.unmasking import parse_unmask_blob

        sig = UploadPolicy.check_signature_format(signature)
        h = parse_hash(blob_hash)
        info = open_round(self.chain, round_id)
        rules = self.rules.get(self.store, info.config_hash)
        if not rules.is_secure:
            raise _err(Conflict(f"round {round_id} is a transparent round: it has no unmask phase"), "not_secure")
        sealed = self._sealed(round_id, info.opened_at)
        if sealed is None:
            raise _err(Conflict(f"round {round_id}'s commit phase is not sealed yet",
                                hint="post the unmasking blob after the CommitmentsSealed event"), "not_sealed")
        unmask_deadline, survivors, selected = sealed
        now = self.chain.block_timestamp()
        if now > unmask_deadline:
            raise _err(Conflict(f"the unmask phase of round {round_id} closed at {unmask_deadline} "
                                f"(chain time is {now})"), "unmask_closed")
        if len(body) > rules.max_update_bytes:
            raise too_large(rules.max_update_bytes, len(body))
        actual = commitment(body)
        if actual != h:
            raise _err(HashMismatch(f"the body hashes to {actual}, not {h}"), "hash_mismatch")
        try:
            signer = recover_upload_signer(sig, self.chain.chain_id, self.chain.rounds_address, round_id, h)
        except AuthError as exc:
            raise _err(exc, "bad_signature") from None
        if signer.lower() not in {a.lower() for a in survivors}:
            raise _err(Forbidden(f"the unmasking signature recovers to {signer}, which is not a survivor of round "
                                 f"{round_id}'s seal", hint="only committed, non-excluded nodes post unmasking blobs"),
                       "not_survivor")
        from fedchain.secure.keys import is_valid_public_key

        s = [a for a in selected[0] if is_valid_public_key(selected[1].get(a, b""))]
        ctx = SecureContext(chain_id=self.chain.chain_id, contract=self.chain.rounds_address, round=round_id)
        try:
            parse_unmask_blob(body, ctx=ctx, holder=signer, selected=s, committed=survivors)
        except FedchainError as exc:
            raise _err(InvalidBlob(exc.message, reason=getattr(exc, "reason", "malformed")),
                       getattr(exc, "reason", "malformed")) from None
        relayed = None
        if relay_signature:
            relayed = self._queue(round_id, h, signer, relay_signature, info, unmask_deadline, now)
        created = not self.store.has(h)
        self.store.put(body, expected_hash=h)
        log.info("round %s: %s uploaded its unmasking blob %s (%d bytes)", round_id, signer, h, len(body))
        return {"round": round_id, "node": signer, "blob_hash": h, "size": len(body), "relay": relayed}, created

    def _sealed(self, round_id: int, opened_at: int) -> tuple[int, list[str], tuple[list[str], dict[str, bytes]]] | None:
        """(unmask deadline, survivors, selected set and keys) of a sealed round, or None before the
        seal. Cached once sealed: the seal fixes them for good (so ten survivors uploading at once
        do not each replay the round's events)."""
        key = (self.chain.chain_id, self.chain.rounds_address, round_id, opened_at)  # a restarted chain differs
        got = _SEALED.get(key)
        if got is not None:
            return got
        with _ROUND_CACHE_LOCK:
            got = _SEALED.get(key)
            if got is not None:
                return got
            selected = selected_of(self.chain, round_id)
            view = self.chain.secure_view(round_id, selected=selected)  # type: ignore[attr-defined]
            if not view.phase.sealed:
                return None
            value = (view.phase.unmask_deadline, [c.node for c in view.survivors], selected)
            if len(_SEALED) > 64:
                _SEALED.clear()
            _SEALED[key] = value
            return value

    def _queue(self, round_id: int, h: str, signer: str, signature: str, info: RoundInfo, unmask_deadline: int,
               now: int) -> str:
        from fedchain.aggregator.relay import SignedUnmask
        from fedchain.auth import recover_unmask_signer

        if self.relay is None:
            raise _err(Conflict("this aggregator does not relay", hint="post the hash with submitUnmask"),
                       "relay_unavailable")
        closes = unmask_deadline - info.relay_cutoff
        if now > closes:
            raise _err(Conflict(f"relayed unmasking posts of round {round_id} closed at {closes} (chain time {now})",
                                hint="post the hash directly with submitUnmask"), "relay_closed")
        try:
            relayed_by = recover_unmask_signer(signature.strip(), self.chain.chain_id, self.chain.rounds_address,
                                               round_id, h)
        except AuthError as exc:
            raise _err(exc, "bad_signature") from None
        if relayed_by.lower() != signer.lower():
            raise _err(AuthError(f"the relay signature recovers to {relayed_by}, not the uploader {signer}",
                                 hint="sign Unmask(roundId, unmaskHash) with the same key (fedchain.auth.sign_unmask)"),
                       "bad_signature")
        if not self.relay.add_unmask(SignedUnmask(round_id, signer, h, signature.strip())):
            raise _err(ServiceUnavailable("the relay queue is full", hint="post directly with submitUnmask"),
                       "relay_full")
        return "queued"


def privacy_state(chain: ChainReader, store: BlobStore, round_id: int | None = None) -> dict[str, Any]:
    """The privacy accountant state after round ``round_id`` (default: the last finalized round),
    from its report: ``{"round", "mode", "state"}``; ``state`` is None for a round without DP noise."""
    rid = round_id if round_id is not None else chain.last_finalized_round_id()  # type: ignore[attr-defined]
    if not rid:
        return {"round": 0, "mode": None, "state": None}
    try:
        info = chain.get_round(rid)
    except NotFound as exc:
        raise _err(NotFound(f"round {rid} does not exist", hint="GET /rounds lists the rounds"), "unknown_round") from exc
    if info.report_hash is None:
        raise _err(NotFound(f"round {rid} is {info.status.label}: it has no report",
                            hint="privacy is accounted when a round finalizes"), "no_report")
    try:
        report = decode_json(store.get(info.report_hash), max_bytes=MAX_CONFIG_BYTES)
    except FedchainError as exc:
        raise _err(ServiceUnavailable(f"the report of round {rid} is not readable here: {exc.message}"),
                   "report_missing") from None
    mode = report.get("mode", "transparent") if isinstance(report, dict) else "transparent"
    state = report.get("privacy") if isinstance(report, dict) else None
    return {"round": rid, "mode": mode, "state": state if isinstance(state, dict) else None}


def too_large(limit: int, size: int | None = None) -> FedchainError:
    what = f"{size} bytes" if size is not None else "over the limit"
    return _err(BlobTooLarge(f"upload is {what}; the round config allows at most {limit} bytes "
                             f"(limits.max_update_bytes)"), "too_large")


# --- sealed update blobs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadGrant:
    """Why a blob may be served: ``public`` (models, configs, reports, or updates of a round whose
    config makes them public) or ``member`` (a signed read by ``reader``)."""

    access: str
    reader: str | None = None


class BlobAccess:
    """Who may read a blob. Anything that is not an update blob is public. An update blob (see
    :func:`sniff_kind`) of round R is:

    - sealed while R is open on-chain: 403 ``sealed`` for everyone;
    - public once R closed if R's config has ``blobs.updates = "public"``;
    - otherwise readable with a signed ``BlobRead(blobHash, expiresAt)`` in ``X-Fedchain-Read`` and
      ``X-Fedchain-Read-Expires`` (unix seconds, server clock, at most an hour ahead) by an active
      node or a holder of ``AUDITOR_ROLE``: 401 ``read_unsigned`` / ``bad_read_signature`` /
      ``read_expired`` / ``read_expiry_too_far``, 403 ``not_a_member``.
    """

    def __init__(self, *, chain: ChainReader, store: BlobStore, indexer: Indexer, rules: RulesCache,
                 kinds: KindCache, clock: Callable[[], float] = time.time) -> None:
        self.chain = chain
        self.store = store
        self.indexer = indexer
        self.rules = rules
        self.kinds = kinds
        self.clock = clock

    def check(self, h: str, *, read_signature: str | None, read_expires: str | None) -> ReadGrant:
        kind = self.kinds.get(self.store, h)  # BlobNotFound -> 404
        if not kind.update:
            return ReadGrant("public")
        info = self._round(kind.round_id, h)
        if info is None or info.status == RoundStatus.OPEN:
            raise _err(Forbidden(f"blob {h} is an update of round {kind.round_id}, sealed while the round is open",
                                 hint="update blobs can be read after their round closes"), "sealed")
        if self.rules.get(self.store, info.config_hash).update_access == "public":
            return ReadGrant("public")
        return ReadGrant("member", self._reader(h, read_signature, read_expires))

    def _round(self, round_id: int | None, h: str) -> RoundInfo | None:
        """The round's state from the chain, else (RPC down) from the index; None: treat as open."""
        if round_id is None or round_id == 0:
            return None
        try:
            return self.chain.get_round(round_id)
        except NotFound:
            return None
        except FedchainError as exc:
            with self.indexer.session() as s:
                row = s.get(Round, round_id)
                if row is None:
                    raise exc
                status = {"open": RoundStatus.OPEN, "finalized": RoundStatus.FINALIZED,
                          "expired": RoundStatus.EXPIRED}.get(row.status, RoundStatus.OPEN)
                return RoundInfo(round_id=round_id, base_model_hash=row.base_model_hash, config_hash=row.config_hash,
                                 global_model_hash=row.global_model_hash, report_hash=row.report_hash,
                                 deadline=int(row.deadline), opened_at=int(row.opened_block),
                                 closed_at=int(row.closed_block or 0), min_updates=int(row.min_updates),
                                 commit_count=int(row.commit_count), accepted_count=int(row.accepted_count),
                                 status=status)

    def _reader(self, h: str, signature: str | None, expires: str | None) -> str:
        hint = (f"sign BlobRead(blobHash, expiresAt) with EIP-712 (fedchain.auth.sign_blob_read) and send it in "
                f"{READ_HEADER}, with expiresAt in {READ_EXPIRES_HEADER}")
        if not signature or not signature.strip() or not expires or not expires.strip():
            raise _err(AuthError(f"blob {h} is an update blob: reading it needs a signed read permission", hint=hint),
                       "read_unsigned")
        exp = expires.strip()
        if not exp.isdigit() or len(exp) > 20 or int(exp) >= 2**64:
            raise _err(AuthError(f"{READ_EXPIRES_HEADER} must be unix seconds, got {exp[:40]!r}", hint=hint),
                       "bad_read_signature")
        expires_at = int(exp)
        now = self.clock()
        if expires_at < now:
            raise _err(AuthError(f"the read permission expired at {expires_at} (server time {int(now)})", hint=hint),
                       "read_expired")
        if expires_at > now + MAX_READ_PERMISSION_SECONDS:
            raise _err(AuthError(f"the read permission runs to {expires_at}, more than "
                                 f"{MAX_READ_PERMISSION_SECONDS} s ahead of server time {int(now)}", hint=hint),
                       "read_expiry_too_far")
        try:
            reader = recover_blob_reader(signature.strip(), self.chain.chain_id, self.chain.rounds_address, h,
                                         expires_at)
        except AuthError as exc:
            raise _err(AuthError(exc.message, hint=hint), "bad_read_signature") from None
        if not (self.chain.is_active_node(reader) or self._auditor(reader)):
            raise _err(Forbidden(f"the read permission recovers to {reader}, which is neither an active node nor "
                                 f"an auditor ({AUDITOR_ROLE})",
                                 hint="sign with a registered node's key or an auditor's; a signature made for "
                                 "another blob, expiry, chain or contract recovers to an unrelated address"),
                       "not_a_member")
        return reader

    def _auditor(self, address: str) -> bool:
        has_role = getattr(self.chain, "has_role", None)
        return bool(has_role(AUDITOR_ROLE, address)) if callable(has_role) else False


# --- relayed commitments ---------------------------------------------------------------------------
class RelayPolicy:
    """A gasless node's signed commitment, queued for the aggregator's next ``submitBatch``.
    Checks, in order:

    1. the body is valid JSON of the documented shape: 422 ``invalid_request``
    2. the round exists (404 ``unknown_round``), is open and current (409 ``round_not_open``)
    3. the signature recovers (401 ``bad_signature``) to a node eligible in the round (403 ``not_eligible``)
    4. chain time is at most ``deadline - relay_cutoff``: 409 ``relay_closed`` (commit directly)
    5. ``num_samples`` at most the round's ``max_samples``: 422 ``too_many_samples``
    6. the node has not committed in this round yet: 409 ``already_committed``
    7. the node uploaded exactly this blob for the round: 409 ``not_uploaded``
    8. the queue has room: 503 ``relay_full``

    Then 202 with the queued entry. Nothing here is trusted by the chain: the contract re-checks it.
    """

    def __init__(self, *, chain: ChainReader, indexer: Indexer, relay: RelayQueue) -> None:
        self.chain = chain
        self.indexer = indexer
        self.relay = relay

    def submit(self, round_id: int, body: CommitmentIn) -> CommitmentOut:
        h = parse_hash(body.update_hash)
        info = open_round(self.chain, round_id)
        try:
            signer = recover_commitment_signer(body.signature, self.chain.chain_id, self.chain.rounds_address,
                                               round_id, h, body.num_samples)
        except AuthError as exc:
            raise _err(AuthError(exc.message, hint="sign Commitment(roundId, updateHash, numSamples) with "
                                 "fedchain.auth.sign_commitment (EIP-2098 compact form)"), "bad_signature") from None
        require_eligible(self.chain, round_id, signer, "commitment")
        now = self.chain.block_timestamp()
        if now > info.relay_closes_at:
            raise _err(Conflict(f"relayed commitments for round {round_id} closed at {info.relay_closes_at} "
                                f"(deadline {info.deadline} minus the relay cut-off {info.relay_cutoff} s; chain time "
                                f"is {now})",
                                hint="commit directly with submitUpdate: the direct path stays open until the deadline"),
                       "relay_closed")
        if body.num_samples > info.max_samples:
            raise _err(TooManySamples(f"num_samples {body.num_samples} is over the round's max_samples "
                                      f"{info.max_samples}"), "too_many_samples")
        if self.chain.has_committed(round_id, signer):
            raise _err(Conflict(f"{signer} already committed in round {round_id}"), "already_committed")
        with self.indexer.session() as s:
            up = s.get(Upload, (round_id, signer))
            if up is None or up.blob_hash != h:
                raise _err(Conflict(f"{signer} has not uploaded {h} for round {round_id}"
                                    + (f" (it uploaded {up.blob_hash})" if up is not None else ""),
                                    hint="upload the blob first (PUT /rounds/{round}/updates/{hash})"), "not_uploaded")
        entry = SignedCommitment(round_id=round_id, node=signer, update_hash=h, num_samples=body.num_samples,
                                 signature="0x" + body.signature[2:].lower())
        if not self.relay.add(entry):
            raise _err(ServiceUnavailable("the relay queue is full", hint="commit directly with submitUpdate"),
                       "relay_full")
        log.info("round %s: queued %s's commitment to %s for relay", round_id, signer, h)
        return CommitmentOut(round=round_id, node=signer, update_hash=h, num_samples=body.num_samples,
                             signature=entry.signature, relay_closes_at=info.relay_closes_at)


# --- health ----------------------------------------------------------------------------------------
def loop_problem(loop_status: Any) -> str | None:
    """The round loop's reported problem, if it reports one (``app.state.loop_status``)."""
    if not isinstance(loop_status, dict) or loop_status.get("state", "ok") == "ok":
        return None
    detail = loop_status.get("detail")
    return f"round loop: {detail}" if detail else "round loop degraded"

