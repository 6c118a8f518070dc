"""Share bundles: every Shamir share a node deals, encrypted to its holder, in its committed blob.

Node o (the *owner*) deals one t-of-n sharing per *subject* v in the selected set S (ordered by
address, holder i has x = i + 1):

- subject v = o: the share is of o's self-mask seed b_o ("self" share);
- subject v != o: of the pair seed s_ov of round ctx ("pair" share of o with peer v).

So the bundle is an n x n x 82 array of bytes: ``bundle[h, k]`` is holder S[h]'s share of subject
S[k]'s secret, encrypted with ChaCha20-Poly1305 (RFC 8439) under a key used for that one message::

    K   = HKDF-SHA256(ikm=share_key(o, h), info="fedchain/secagg/v1/share" || ctx || o || h || v)
    ad  = "fedchain/secagg/v1/share-ad" || ctx || o || h || v          (ctx: :class:`.keys.RoundContext`)
    ct  = ChaCha20-Poly1305(K).encrypt(nonce = 12 zero bytes, share (66 bytes), ad)   (82 bytes)

with share_key(o, h) from :func:`.keys.pair_keys` (both o and h can compute it; o = h works too).
The associated data binds round, sender, recipient and subject. To reveal one share a holder
publishes K, not its long-term key nor share_key: anyone can then decrypt exactly that ciphertext
from o's committed blob, and the Poly1305 tag proves the share is the one o dealt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from fedchain.secure import PROTOCOL, SecAggError
from fedchain.secure.keys import PairKeys, RoundContext, address_bytes, hkdf
from fedchain.secure.shamir import SHARE_BYTES, decode_share, encode_share, split

__all__ = [
    "CT_BYTES",
    "SHARES_TENSOR",
    "ShareRef",
    "build_share_bundle",
    "open_own_shares",
    "open_share",
    "reveal_key",
    "share_ad",
    "share_key",
]

#: Name of the share tensor in a masked update blob (dtype U8, shape (n, n, CT_BYTES)).
SHARES_TENSOR = "secagg:shares"
CT_BYTES = SHARE_BYTES + 16
_NONCE = bytes(12)


@dataclass(frozen=True, order=True)
class ShareRef:
    """One secret a survivor may be asked to reveal its share of: ``kind`` "self" (the self-mask
    seed of ``owner``; ``peer`` is None) or "pair" (``owner``'s pair seed with ``peer``, from
    ``owner``'s sharing)."""

    kind: str
    owner: str
    peer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("self", "pair") or (self.kind == "self") != (self.peer is None):
            raise SecAggError(f"bad share reference {self!r}", reason="malformed")

    @property
    def subject(self) -> str:
        return self.owner if self.kind == "self" else self.peer  # type: ignore[return-value]

    def key(self) -> str:
        return f"{self.kind}:{self.owner.lower()}:{(self.peer or '').lower()}"


def _tail(ctx: RoundContext, owner: str, holder: str, subject: str) -> bytes:
    return ctx.encode() + address_bytes(owner) + address_bytes(holder) + address_bytes(subject)


def share_key(base: bytes, ctx: RoundContext, owner: str, holder: str, subject: str) -> bytes:
    """The one-message key K of holder's share of owner's subject secret."""
    return hkdf(base, PROTOCOL + b"/share" + _tail(ctx, owner, holder, subject), 32)


def share_ad(ctx: RoundContext, owner: str, holder: str, subject: str) -> bytes:
    return PROTOCOL + b"/share-ad" + _tail(ctx, owner, holder, subject)


def _index(selected: Sequence[str]) -> dict[bytes, int]:
    return {address_bytes(a): i for i, a in enumerate(selected)}


def build_share_bundle(
    *,
    me: str,
    selected: Sequence[str],
    keys: Mapping[str, PairKeys],
    ctx: RoundContext,
    threshold: int,
    self_seed: bytes,
    pair_seeds: Mapping[str, bytes],
    randomness: bytes,
) -> np.ndarray:
    """The (n, n, 82) uint8 bundle of node ``me``. ``selected``: S in protocol order;
    ``keys``: PairKeys with every node of S, ``me`` included; ``pair_seeds``: s_{me,v} for every
    other v; ``randomness``: >= 32 secret bytes (Shamir coefficients, derived per subject)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    n = len(selected)
    by_addr = {address_bytes(a): a for a in keys}
    bundle = np.zeros((n, n, CT_BYTES), dtype=np.uint8)
    mine = address_bytes(me)
    bases = []
    for holder in selected:
        pk = by_addr.get(address_bytes(holder))
        if pk is None:
            raise SecAggError(f"no pair keys with {holder}", reason="malformed")
        bases.append(keys[pk].share_key)
    peer_seeds = {address_bytes(p): s for p, s in pair_seeds.items()}
    for k, subject in enumerate(selected):
        sb = address_bytes(subject)
        secret = self_seed if sb == mine else peer_seeds.get(sb)
        if secret is None:
            raise SecAggError(f"no pair seed with {subject}", reason="malformed")
        ys = split(secret, threshold, n, hkdf(bytes(randomness), PROTOCOL + b"/shamir" + sb, 64))
        for h, holder in enumerate(selected):
            key = share_key(bases[h], ctx, me, holder, subject)
            ct = ChaCha20Poly1305(key).encrypt(_NONCE, encode_share(ys[h]), share_ad(ctx, me, holder, subject))
            bundle[h, k] = np.frombuffer(ct, dtype=np.uint8)
    return bundle


def reveal_key(ref: ShareRef, *, holder: str, keys_with_owner: PairKeys, ctx: RoundContext) -> bytes:
    """K for ``holder``'s share of ``ref`` (what an unmasking blob publishes)."""
    return share_key(keys_with_owner.share_key, ctx, ref.owner, holder, ref.subject)


def open_share(
    bundle: np.ndarray, *, key: bytes, ctx: RoundContext, selected: Sequence[str], owner: str, holder: str, subject: str
) -> int:
    """Decrypt holder's share of subject's secret from owner's ``bundle`` with the one-message key
    K. Raises SecAggError ``bad_share`` if K does not open it (wrong key, or not that bundle)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    index = _index(selected)
    h, k = index.get(address_bytes(holder)), index.get(address_bytes(subject))
    if h is None or k is None:
        raise SecAggError("holder or subject not in the selected set", reason="not_selected")
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise SecAggError("a share key is 32 bytes", reason="bad_share")
    ct = bytes(np.asarray(bundle, dtype=np.uint8)[h, k])
    try:
        pt = ChaCha20Poly1305(bytes(key)).decrypt(_NONCE, ct, share_ad(ctx, owner, holder, subject))
    except InvalidTag:
        raise SecAggError(f"share of {holder} for {owner}/{subject} does not open with the revealed key", reason="bad_share") from None
    try:
        return decode_share(pt)
    except SecAggError:
        raise SecAggError("decrypted share is not a field element", reason="bad_share") from None


def open_own_shares(
    bundle: np.ndarray, *, me: str, owner: str, keys_with_owner: PairKeys, ctx: RoundContext, selected: Sequence[str]
) -> dict[str, int]:
    """Every share that ``owner``'s bundle holds for ``me``: subject address -> share value."""
    out = {}
    for subject in selected:
        key = share_key(keys_with_owner.share_key, ctx, owner, me, subject)
        out[subject] = open_share(bundle, key=key, ctx=ctx, selected=selected, owner=owner, holder=me, subject=subject)
    return out
