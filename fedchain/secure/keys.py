"""X25519 key agreement and the per-round, per-pair seeds derived from it.

Every node has one X25519 key pair whose public key is registered on-chain (``NodeRegistry``). For a
round (chain id, contract, round id) and an unordered pair of nodes {a, b}, both derive the same 64
bytes::

    shared = X25519(sk_a, pk_b) = X25519(sk_b, pk_a)
    okm    = HKDF-SHA256(ikm=shared, salt=none, length=64,
                         info="fedchain/secagg/v1" || uint256_be(chain id) || contract (20 bytes)
                              || uint256_be(round) || min(a, b) (20 bytes) || max(a, b) (20 bytes))
    mask_seed = okm[:32]   (the pairwise mask PRG key, :mod:`.prg`)
    share_key = okm[32:]   (base key of the shares the two send each other, :mod:`.shares`)

A node's pair with itself (a = b) is defined the same way: its share to itself is encrypted under
it. Addresses are ordered as 20-byte big-endian numbers (lowercase hex order). Because the seeds
depend on the round, revealing one round's pair seed reveals nothing about another round's, and
the long-term key is never shared.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from fedchain.secure import PROTOCOL, SecAggError

__all__ = [
    "PairKeys",
    "RoundContext",
    "address_bytes",
    "hkdf",
    "is_valid_public_key",
    "order_addresses",
    "pair_keys",
    "private_key_from_seed",
    "public_key",
    "shared_secret",
]


def hkdf(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) without salt."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)


def address_bytes(address: str) -> bytes:
    """The 20 bytes of a 0x-hex address (any case)."""
    if not isinstance(address, str):
        raise SecAggError(f"address {address!r} is not a string", reason="malformed")
    h = address[2:] if address[:2] in ("0x", "0X") else address
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise SecAggError(f"{address!r} is not a 20-byte address", reason="malformed")
    return raw


def order_addresses(addresses) -> list[str]:
    """Checksummed addresses, sorted as numbers, duplicates refused: the order of the protocol."""
    from fedchain.address import to_checksum_address

    addresses = list(addresses)
    items = sorted({address_bytes(a): a for a in addresses}.items())
    if len(items) != len(addresses):
        raise SecAggError("duplicate address in a node set", reason="malformed")
    return [to_checksum_address("0x" + raw.hex()) for raw, _ in items]


@dataclass(frozen=True)
class RoundContext:
    """The round every derivation is bound to."""

    chain_id: int
    contract: str
    round: int

    def encode(self) -> bytes:
        return int(self.chain_id).to_bytes(32, "big") + address_bytes(self.contract) + int(self.round).to_bytes(32, "big")


@dataclass(frozen=True)
class PairKeys:
    mask_seed: bytes
    share_key: bytes


def private_key_from_seed(seed: bytes) -> bytes:
    """A raw X25519 private key (32 bytes) from ``seed`` (>= 16 bytes): HKDF(seed, "fedchain/x25519/v1").
    Tests use it; a node may derive its key from its own secret the same way."""
    if not isinstance(seed, (bytes, bytearray)) or len(seed) < 16:
        raise SecAggError("a key seed is at least 16 bytes", reason="malformed")
    return hkdf(bytes(seed), b"fedchain/x25519/v1")


def public_key(private: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def shared_secret(private: bytes, peer_public: bytes) -> bytes:
    """X25519(private, peer_public). Raises SecAggError ``bad_public_key`` for a key that is not 32
    bytes or is of small order (the all-zero shared secret).

    Long-term keys meet the same peers every round, so agreements are memoised (a pure function of
    its two byte strings; the secret stays in this process, which holds the private key anyway)."""
    if not isinstance(peer_public, (bytes, bytearray)) or len(peer_public) != 32:
        raise SecAggError("an X25519 public key is 32 bytes", reason="bad_public_key")
    return _agree(bytes(private), bytes(peer_public))


@functools.lru_cache(maxsize=4096)
def _agree(private: bytes, peer_public: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise SecAggError(f"X25519 key agreement failed ({exc})", reason="bad_public_key") from None


_PROBE = bytes(range(1, 33))


def is_valid_public_key(pub: object) -> bool:
    """True if ``pub`` is a 32-byte X25519 public key that is not of small order (anyone can check
    a registered key with this; a node set for masking should contain only valid keys)."""
    try:
        shared_secret(_PROBE, pub)  # type: ignore[arg-type]
    except SecAggError:
        return False
    return True


def pair_keys(shared: bytes, ctx: RoundContext, a: str, b: str) -> PairKeys:
    """The seeds of the pair {a, b} in round ``ctx`` from their X25519 shared secret."""
    x, y = sorted((address_bytes(a), address_bytes(b)))
    okm = hkdf(shared, PROTOCOL + ctx.encode() + x + y, 64)
    return PairKeys(mask_seed=okm[:32], share_key=okm[32:])


def pair_keys_for(private: bytes, me: str, peer: str, peer_public: bytes, ctx: RoundContext) -> PairKeys:
    """:func:`pair_keys` from my private key and the peer's registered public key."""
    return pair_keys(shared_secret(private, peer_public), ctx, me, peer)


__all__.append("pair_keys_for")
