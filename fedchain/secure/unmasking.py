"""The unmask phase: what a survivor reveals, the refusal rule, unmasking blobs, recovering the
seeds from them, and the range check of the unmasked sum.

**What the on-chain set implies.** S = the selected nodes, C = the committers (final on-chain after
the commit phase), D = S \\ C. Every node that posts an unmasking blob reveals, from the bundles in
the committed blobs (so only owners in C):

- ("self", u) for every u in C: its share of b_u, the self mask of a committed input;
- ("pair", u, d) for every u in C and d in D: its share of s_ud from u's sharing, the pair masks
  that did not cancel because d's input is not in the sum.

It never reveals a pair seed between two committed nodes. Hence, for every node X, it reveals
*either* X's self mask (X in C) *or* pair seeds with X as the dropped peer (X in D), never both:
both would unmask X's input (its pair masks with C are then known). :func:`check_reveal` enforces
both rules, also against what the node revealed before for the same round (``already``), so an
aggregator that shows different sets at different times gets nothing more. With the chain fixing
C, every node sees the same sets: that is Bonawitz et al.'s consistency check, for free.

**Unmasking blob** (canonical JSON, :func:`fedchain.codec.encode_json`)::

    {"chain_id": 1, "committed": [<C, protocol order>], "contract": "0x..", "node": "0x..",
     "pair": {"<u>": {"<d>": "<K hex>"}}, "round": 7, "self": {"<u>": "<K hex>"},
     "version": "fedchain/secagg-unmask/v1"}

K is the one-message key of the revealer's share (:mod:`.shares`): anyone decrypts the share from
u's committed bundle with it, and a wrong K fails the AEAD tag (reason ``bad_share``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from fedchain.codec import ROUNDING_BETA, FixedPointConfig, decode_json, encode_json, fixed_to_signed, rounded_l2_bound
from fedchain.errors import InvalidBlob
from fedchain.secure import RevealRefused, SecAggError, UnmaskImpossible
from fedchain.secure.keys import PairKeys, RoundContext, address_bytes, order_addresses
from fedchain.secure.shamir import consistent, reconstruct_secret
from fedchain.secure.shares import ShareRef, open_share, reveal_key

__all__ = [
    "MAX_UNMASK_BLOB_BYTES",
    "RangeResult",
    "Recovery",
    "UNMASK_VERSION",
    "build_unmask_blob",
    "check_reveal",
    "check_sum_range",
    "parse_unmask_blob",
    "recover_seeds",
    "reveal_plan",
]

UNMASK_VERSION = "fedchain/secagg-unmask/v1"
MAX_UNMASK_BLOB_BYTES = 4 << 20
_KEYS = {"chain_id", "committed", "contract", "node", "pair", "round", "self", "version"}


def _sets(selected: Sequence[str], committed: Iterable[str]) -> tuple[list[str], set[bytes], set[bytes]]:
    s = order_addresses(selected)
    sb = {address_bytes(a) for a in s}
    cb = {address_bytes(a) for a in committed}
    if not cb <= sb:
        raise SecAggError("a committed node is not in the selected set", reason="not_selected")
    return s, sb, cb


def reveal_plan(selected: Sequence[str], committed: Iterable[str]) -> list[ShareRef]:
    """Exactly the shares a poster reveals for the on-chain sets (protocol order)."""
    s, _, cb = _sets(selected, committed)
    c = [a for a in s if address_bytes(a) in cb]
    d = [a for a in s if address_bytes(a) not in cb]
    return [ShareRef("self", u) for u in c] + [ShareRef("pair", u, x) for u in c for x in d]


def check_reveal(
    requested: Iterable[ShareRef],
    selected: Sequence[str],
    committed: Iterable[str],
    already: Iterable[ShareRef] = (),
) -> None:
    """Refuse (RevealRefused) any reveal the on-chain sets do not imply, or that, with ``already``
    (what this node revealed before in this round), would reveal both the self mask of a node and a
    pair seed with that node as the peer. Reasons: ``not_selected``, ``not_committed`` (self share
    of a node that did not commit, or a pair share from a dropped owner's sharing),
    ``peer_committed`` (pair seed between two committed nodes), ``both_kinds_for_peer``."""
    requested = list(requested)
    _, sb, cb = _sets(selected, committed)
    for ref in requested:
        o = address_bytes(ref.owner)
        if o not in sb or (ref.peer is not None and address_bytes(ref.peer) not in sb):
            raise RevealRefused(f"{ref.kind} share of {ref.owner} / {ref.peer}: not in the selected set", reason="not_selected")
        if o not in cb:
            raise RevealRefused(f"{ref.kind} share of {ref.owner}: it did not commit, nothing of it is in the sum", reason="not_committed")
        if ref.kind == "pair" and address_bytes(ref.peer) in cb:  # type: ignore[arg-type]
            raise RevealRefused(
                f"pair share of {ref.owner} with {ref.peer}: both committed, so that mask cancels and must stay secret",
                reason="peer_committed",
            )
    selfs: set[bytes] = set()
    peers: set[bytes] = set()
    for ref in list(already) + requested:
        if ref.kind == "self":
            selfs.add(address_bytes(ref.owner))
        else:
            peers.add(address_bytes(ref.peer))  # type: ignore[arg-type]
    both = selfs & peers
    if both:
        x = "0x" + sorted(both)[0].hex()
        raise RevealRefused(
            f"refusing to reveal both the self-mask share of {x} and a pairwise share with it: together they unmask its input",
            reason="both_kinds_for_peer",
        )


def build_unmask_blob(
    *,
    me: str,
    ctx: RoundContext,
    selected: Sequence[str],
    committed: Iterable[str],
    keys: Mapping[str, PairKeys],
    already: Iterable[ShareRef] = (),
) -> bytes:
    """My unmasking blob for the on-chain sets. ``keys``: PairKeys with every committed node (me
    included). Raises RevealRefused if :func:`check_reveal` does."""
    from fedchain.address import to_checksum_address

    committed = list(committed)
    plan = reveal_plan(selected, committed)
    check_reveal(plan, selected, committed, already)
    by_addr = {address_bytes(a): v for a, v in keys.items()}
    selfs: dict[str, str] = {}
    pairs: dict[str, dict[str, str]] = {}
    for ref in plan:
        k = by_addr.get(address_bytes(ref.owner))
        if k is None:
            raise SecAggError(f"no pair keys with {ref.owner}", reason="malformed")
        hexkey = reveal_key(ref, holder=me, keys_with_owner=k, ctx=ctx).hex()
        if ref.kind == "self":
            selfs[ref.owner] = hexkey
        else:
            pairs.setdefault(ref.owner, {})[ref.peer] = hexkey  # type: ignore[index]
    s = order_addresses(selected)
    cb = {address_bytes(a) for a in committed}
    doc = {
        "chain_id": int(ctx.chain_id),
        "committed": [a for a in s if address_bytes(a) in cb],
        "contract": to_checksum_address(ctx.contract),
        "node": to_checksum_address(me),
        "pair": pairs,
        "round": int(ctx.round),
        "self": selfs,
        "version": UNMASK_VERSION,
    }
    return encode_json(doc)


def _bad(message: str, reason: str) -> InvalidBlob:
    return InvalidBlob(message, reason=reason)


def _hexkey(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise _bad("an unmasking key is 64 hex digits", "malformed")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _bad("an unmasking key is 64 hex digits", "malformed") from None


def parse_unmask_blob(
    data: bytes, *, ctx: RoundContext, holder: str, selected: Sequence[str], committed: Iterable[str]
) -> dict[ShareRef, bytes]:
    """The keys an unmasking blob reveals, checked against the round and the on-chain sets.

    Raises InvalidBlob: ``malformed`` / ``too_large``, ``not_own_update`` (another node, chain,
    contract or round), ``wrong_committed_set`` (revealed for another C), ``wrong_reveals`` (not
    exactly :func:`reveal_plan`: more would be an over-reveal, less is incomplete)."""
    from fedchain.address import to_checksum_address

    doc = decode_json(data, max_bytes=MAX_UNMASK_BLOB_BYTES)
    if not isinstance(doc, dict) or set(doc) != _KEYS or doc["version"] != UNMASK_VERSION:
        raise _bad(f"not a {UNMASK_VERSION} unmasking blob", "malformed")
    try:
        same = (
            doc["chain_id"] == int(ctx.chain_id)
            and doc["round"] == int(ctx.round)
            and address_bytes(doc["contract"]) == address_bytes(ctx.contract)
            and address_bytes(doc["node"]) == address_bytes(holder)
        )
    except SecAggError:
        raise _bad("unmasking blob has a bad address", "malformed") from None
    if not same:
        raise _bad("unmasking blob was made by another node or for another round", "not_own_update")
    committed = list(committed)
    s = order_addresses(selected)
    cb = {address_bytes(a) for a in committed}
    want_c = [a for a in s if address_bytes(a) in cb]
    if not isinstance(doc["committed"], list) or [str(a).lower() for a in doc["committed"]] != [a.lower() for a in want_c]:
        raise _bad("unmasking blob was made for another committed set", "wrong_committed_set")
    if not isinstance(doc["self"], dict) or not isinstance(doc["pair"], dict):
        raise _bad("unmasking blob: self and pair must be objects", "malformed")
    got: dict[ShareRef, bytes] = {}
    for owner, key in doc["self"].items():
        if not _is_addr(owner):
            raise _bad("unmasking blob has a bad address", "malformed")
        got[ShareRef("self", to_checksum_address(owner))] = _hexkey(key)
    for owner, inner in doc["pair"].items():
        if not isinstance(inner, dict):
            raise _bad("unmasking blob: pair entries must be objects", "malformed")
        for peer, key in inner.items():
            if not (_is_addr(owner) and _is_addr(peer)):
                raise _bad("unmasking blob has a bad address", "malformed")
            got[ShareRef("pair", to_checksum_address(owner), to_checksum_address(peer))] = _hexkey(key)
    plan = reveal_plan(selected, committed)
    if set(got) != set(plan):
        extra = len(set(got) - set(plan))
        missing = len(set(plan) - set(got))
        raise _bad(f"unmasking blob reveals {extra} share(s) not implied by the on-chain set and lacks {missing}", "wrong_reveals")
    return got


def _is_addr(a: object) -> bool:
    try:
        address_bytes(a)  # type: ignore[arg-type]
    except SecAggError:
        return False
    return True


@dataclass
class Recovery:
    """Seeds recovered for :func:`fedchain.secure.masking.unmask_sum`, and what was rejected."""

    self_seeds: dict[str, bytes]
    pair_seeds: dict[tuple[str, str], bytes]
    rejected: list[dict[str, str]] = field(default_factory=list)  # {holder, share, reason}
    inconsistent: list[str] = field(default_factory=list)  # owners whose shares disagree


def recover_seeds(
    bundles: Mapping[str, np.ndarray],
    reveals: Mapping[str, Mapping[ShareRef, bytes]],
    *,
    ctx: RoundContext,
    selected: Sequence[str],
    committed: Iterable[str],
    threshold: int,
) -> Recovery:
    """Reconstruct b_u (u in C) and s_ud (u in C, d in D) from the posters' revealed keys.

    ``bundles``: owner -> share bundle from its committed blob (every u in C); ``reveals``: holder
    -> :func:`parse_unmask_blob` result, for the posters whose unmasking blobs count (committed
    on-chain). Every share is opened with its key; one that does not open is rejected (reason
    ``bad_share``) and the others are used. Each secret takes the valid shares of the ``threshold``
    first holders in protocol order. Raises UnmaskImpossible ``too_few_shares`` if a secret has
    fewer than ``threshold`` valid shares."""
    committed = list(committed)
    s = order_addresses(selected)
    x_of = {address_bytes(a): i + 1 for i, a in enumerate(s)}
    by_owner = {address_bytes(o): b for o, b in bundles.items()}
    plan = reveal_plan(s, committed)
    holders = sorted(reveals, key=address_bytes)
    result = Recovery(self_seeds={}, pair_seeds={})
    for ref in plan:
        bundle = by_owner.get(address_bytes(ref.owner))
        if bundle is None:
            raise SecAggError(f"no share bundle of committed node {ref.owner}", reason="missing_bundle")
        points: list[tuple[int, int]] = []
        for holder in holders:
            key = reveals[holder].get(ref)
            if key is None:
                continue
            try:
                y = open_share(bundle, key=key, ctx=ctx, selected=s, owner=ref.owner, holder=holder, subject=ref.subject)
            except SecAggError as exc:
                result.rejected.append({"holder": holder, "share": ref.key(), "reason": exc.reason})
                continue
            points.append((x_of[address_bytes(holder)], y))
        if len(points) < threshold:
            raise UnmaskImpossible(
                f"{len(points)} valid share(s) of the {ref.kind} seed of {ref.owner}"
                + (f" with {ref.peer}" if ref.peer else "")
                + f"; {threshold} are needed",
                reason="too_few_shares",
            )
        if not consistent(points, threshold) and ref.owner not in result.inconsistent:
            result.inconsistent.append(ref.owner)
        try:
            secret = reconstruct_secret(points, threshold)
        except SecAggError as exc:
            raise UnmaskImpossible(f"shares of {ref.owner} do not reconstruct a seed", reason=exc.reason) from None
        if ref.kind == "self":
            result.self_seeds[ref.owner] = secret
        else:
            result.pair_seeds[(ref.owner, ref.peer)] = secret  # type: ignore[index]
    return result


@dataclass(frozen=True)
class RangeResult:
    ok: bool
    reason: str | None
    message: str


def check_sum_range(
    total: Mapping[str, np.ndarray],
    *,
    config: FixedPointConfig,
    contributors: int,
    noise_bound: int = 0,
    beta: float = ROUNDING_BETA,
) -> RangeResult:
    """Is the unmasked sum (residues) consistent with ``contributors`` honestly clipped inputs?

    Bounds (integer units): every |coordinate| <= contributors * (floor(C 2^k) + 1) + noise_bound,
    and ||sum||_2 <= contributors * rounded_l2_bound(C 2^k, d, beta) + sqrt(d) * noise_bound, with
    ``noise_bound`` a per-coordinate bound of the summed noise
    (:func:`fedchain.privacy.noise.noise_linf_bound`). Otherwise reason ``sum_out_of_range``: a
    node did not clip (or the sum wrapped). Honest nodes' sums never fail it (up to the noise
    bound's failure probability)."""
    names = sorted(total)
    signed = [fixed_to_signed(np.asarray(total[n]), config.modulus_bits).reshape(-1) for n in names]
    flat = np.concatenate(signed) if signed else np.zeros(0, dtype=np.int64)
    dim = int(flat.size)
    linf_limit = contributors * config.max_abs_coordinate() + int(noise_bound)
    worst = int(np.max(np.abs(flat))) if dim else 0
    if worst > linf_limit:
        return RangeResult(False, "sum_out_of_range", f"a coordinate of the sum is {worst}, more than the bound {linf_limit} for {contributors} clipped inputs")
    sq = _exact_sq(flat, worst)
    l2_limit = contributors * rounded_l2_bound(config.clip * config.scale, dim, beta) + math.sqrt(dim) * noise_bound
    if sq > l2_limit * l2_limit:
        return RangeResult(False, "sum_out_of_range", f"the sum has L2 norm {math.sqrt(sq):.6g}, more than the bound {l2_limit:.6g} for {contributors} clipped inputs")
    return RangeResult(True, None, "sum within the clip bounds")


def _exact_sq(flat: np.ndarray, worst: int) -> int:
    if worst == 0:
        return 0
    if worst < (1 << 31):
        sq = flat * flat
        chunk = max(1, ((1 << 63) - 1) // (worst * worst))
        return sum(int(sq[i : i + chunk].sum()) for i in range(0, sq.size, chunk))
    return sum(int(v) * int(v) for v in flat.tolist())
