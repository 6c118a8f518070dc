"""The secure-mode calls of the integration: one for the node, one for the aggregator and verify.

Node, after training (all inputs are public round data except ``private_key`` and ``secret``)::

    blob = node_masked_update(delta, secure=cfg, ctx=ctx, me=me, private_key=sk,
                              selected=S, public_keys=pks, secret=os.urandom(32))
    ...  # upload and commit blob as any update blob
    # after the commit phase, with C read from the chain:
    unmask = node_unmask_blob(me=me, private_key=sk, ctx=ctx, selected=S, committed=C, public_keys=pks)

Aggregator and ``fedchain verify``, with the blobs the chain commits to::

    result = unmask_round(masked_blobs, unmask_blobs, secure=cfg, ctx=ctx, selected=S,
                          committed=C, expected=model_spec)
    result.total            # exact sum of the committed inputs (residues modulo 2^M)
    result.range.reason     # None, or "sum_out_of_range"
    dequantize(result.total, cfg.fixed)   # float64 sum, to divide by the sum of the weights

The node's ``secret`` (32 fresh random bytes per round, kept by the node until it has posted its
unmasking blob) determines its rounding, noise, self mask and Shamir coefficients through HKDF:
the blob is a pure function of the inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fedchain.codec import FixedPointConfig, UpdateIdentity, add_fixed, quantize
from fedchain.errors import InvalidBlob
from fedchain.privacy.clipping import clip_l2
from fedchain.privacy.noise import SkellamNoise, add_noise, node_noise, noise_linf_bound
from fedchain.secure import PROTOCOL, SecAggError, UnmaskImpossible
from fedchain.secure.blob import decode_masked_update, encode_masked_update
from fedchain.secure.keys import PairKeys, RoundContext, address_bytes, hkdf, is_valid_public_key, order_addresses, pair_keys_for
from fedchain.secure.masking import mask_input, unmask_sum
from fedchain.secure.shares import ShareRef, build_share_bundle
from fedchain.secure.unmasking import RangeResult, build_unmask_blob, check_sum_range, parse_unmask_blob, recover_seeds

__all__ = ["SecureConfig", "UnmaskResult", "node_keys", "node_masked_update", "node_unmask_blob", "unmask_round"]


@dataclass(frozen=True)
class SecureConfig:
    """The secure part of a round config: fixed point, threshold t, optional Skellam noise.

    JSON form: ``{"fixed_point": {...}, "noise": {...} or null, "threshold": 6}``."""

    fixed: FixedPointConfig
    threshold: int
    noise: SkellamNoise | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fixed_point": self.fixed.to_dict(), "noise": self.noise.to_dict() if self.noise else None, "threshold": int(self.threshold)}

    @classmethod
    def from_dict(cls, obj: Any) -> "SecureConfig":
        if not isinstance(obj, Mapping) or set(obj) != {"fixed_point", "noise", "threshold"}:
            raise SecAggError("secure config must have exactly fixed_point, noise, threshold", reason="malformed")
        t = obj["threshold"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise SecAggError(f"threshold must be a positive integer, got {t!r}", reason="bad_threshold")
        noise = None if obj["noise"] is None else SkellamNoise.from_dict(obj["noise"])
        return cls(fixed=FixedPointConfig.from_dict(obj["fixed_point"]), threshold=t, noise=noise)

    def check_cohort(self, n_selected: int) -> None:
        """t <= n and the modulus has room for n inputs plus the noise (no wrap-around)."""
        if not 1 <= self.threshold <= n_selected:
            raise SecAggError(f"threshold {self.threshold} with {n_selected} selected nodes", reason="bad_threshold")
        if self.fixed.max_nodes(self.noise_bound(n_selected, 1 << 24)) < n_selected:
            raise SecAggError(
                f"{n_selected} inputs at scale 2^{self.fixed.scale_bits} may wrap around modulo 2^{self.fixed.modulus_bits}",
                reason="no_headroom",
                hint="lower scale_bits or use modulus_bits 64",
            )

    def noise_bound(self, contributors: int, dim: int) -> int:
        if self.noise is None:
            return 0
        return noise_linf_bound(self.noise.summed_variance(contributors), dim)


def node_keys(private_key: bytes, me: str, selected: Sequence[str], public_keys: Mapping[str, bytes], ctx: RoundContext) -> dict[str, PairKeys]:
    """PairKeys with every node of ``selected`` (me included), by checksummed address."""
    pks = {address_bytes(a): v for a, v in public_keys.items()}
    out = {}
    for peer in order_addresses(selected):
        pk = pks.get(address_bytes(peer))
        if pk is None or not is_valid_public_key(pk):
            raise SecAggError(f"no valid X25519 public key for {peer}", reason="bad_public_key")
        out[peer] = pair_keys_for(private_key, me, peer, pk, ctx)
    return out


def noised_residues(delta: Mapping[str, Any], *, secure: SecureConfig, secret: bytes,
                    weight: float = 1.0) -> dict[str, np.ndarray]:
    """A node's input to the masked sum before masking: ``delta`` clipped to C, scaled by
    ``weight``, quantised with stochastic rounding and with the node's noise share added, its
    randomness from ``secret`` (HKDF labels ``/rounding`` and ``/noise``)."""
    clipped, _ = clip_l2(delta, secure.fixed.clip)
    if weight != 1.0:
        clipped = {k: v * weight for k, v in clipped.items()}
    residues = quantize(clipped, secure.fixed, hkdf(secret, PROTOCOL + b"/rounding", 32))
    if secure.noise is not None:
        spec = {k: tuple(v.shape) for k, v in residues.items()}
        residues = add_noise(residues, node_noise(spec, secure.noise, hkdf(secret, PROTOCOL + b"/noise", 32)), secure.fixed)
    return residues


def node_masked_update(
    delta: Mapping[str, Any],
    *,
    secure: SecureConfig,
    ctx: RoundContext,
    me: str,
    private_key: bytes,
    selected: Sequence[str],
    public_keys: Mapping[str, bytes],
    secret: bytes,
    weight: float = 1.0,
) -> bytes:
    """The masked update blob of node ``me``: clip to C, scale by ``weight`` in [0, 1] (e.g. its
    capped sample share), quantise with stochastic rounding, add its noise share, mask, and attach
    its share bundle."""
    from fedchain.address import to_checksum_address

    s = order_addresses(selected)
    if address_bytes(me) not in {address_bytes(a) for a in s}:
        raise SecAggError(f"{me} is not in the selected set", reason="not_selected")
    me = to_checksum_address(me)
    secure.check_cohort(len(s))
    if not (0.0 <= weight <= 1.0):
        raise SecAggError(f"weight must be in [0, 1], got {weight}", reason="malformed")
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 32:
        raise SecAggError("the node's round secret is at least 32 bytes", reason="malformed")
    secret = bytes(secret)
    residues = noised_residues(delta, secure=secure, secret=secret, weight=weight)
    keys = node_keys(private_key, me, s, public_keys, ctx)
    pair_seeds = {peer: k.mask_seed for peer, k in keys.items() if peer != me}
    self_seed = hkdf(secret, PROTOCOL + b"/self-mask", 32)
    masked = mask_input(residues, me=me, self_seed=self_seed, pair_seeds=pair_seeds, config=secure.fixed)
    bundle = build_share_bundle(
        me=me,
        selected=s,
        keys=keys,
        ctx=ctx,
        threshold=secure.threshold,
        self_seed=self_seed,
        pair_seeds=pair_seeds,
        randomness=hkdf(secret, PROTOCOL + b"/shamir", 32),
    )
    return encode_masked_update(masked, bundle, secure.fixed, UpdateIdentity(ctx.chain_id, ctx.contract, ctx.round, me))


def node_unmask_blob(
    *,
    me: str,
    private_key: bytes,
    ctx: RoundContext,
    selected: Sequence[str],
    committed: Iterable[str],
    public_keys: Mapping[str, bytes],
    already: Iterable[ShareRef] = (),
) -> bytes:
    """My unmasking blob for the on-chain committed set (RevealRefused if it is not consistent
    with what I revealed before, ``already``)."""
    from fedchain.address import to_checksum_address

    committed = list(committed)
    cb = {address_bytes(a) for a in committed}
    owners = [a for a in order_addresses(selected) if address_bytes(a) in cb]
    keys = node_keys(private_key, me, owners, public_keys, ctx)
    return build_unmask_blob(me=to_checksum_address(me), ctx=ctx, selected=selected, committed=committed, keys=keys, already=already)


@dataclass
class UnmaskResult:
    total: dict[str, np.ndarray]  # exact sum of the committed inputs, residues modulo 2^M
    range: RangeResult
    posters: list[str]  # whose unmasking blobs were valid
    rejected: list[dict[str, str]] = field(default_factory=list)  # {holder, share?, reason}
    inconsistent: list[str] = field(default_factory=list)
    contributors: int = 0

    def report(self) -> dict[str, Any]:
        """JSON-ready summary for the round report."""
        return {
            "contributors": self.contributors,
            "inconsistent_share_owners": list(self.inconsistent),
            "posters": list(self.posters),
            "range": {"ok": self.range.ok, "reason": self.range.reason, "message": self.range.message},
            "rejected": list(self.rejected),
        }


def unmask_round(
    masked_blobs: Mapping[str, bytes],
    unmask_blobs: Mapping[str, bytes],
    *,
    secure: SecureConfig,
    ctx: RoundContext,
    selected: Sequence[str],
    committed: Iterable[str],
    expected: Mapping[str, tuple[int, ...]],
    max_bytes: int | None = None,
) -> UnmaskResult:
    """Recompute a secure round's sum from public data, bit-exactly.

    ``masked_blobs``: committed node -> its committed masked blob (every node of ``committed``);
    ``unmask_blobs``: poster -> its unmasking blob (those committed on-chain). A malformed masked
    blob raises InvalidBlob (its reason; the message names the node); an unmasking blob that fails
    :func:`parse_unmask_blob` is left out and listed in ``rejected``. Raises UnmaskImpossible when
    fewer than t valid shares remain for some seed."""
    from fedchain.address import to_checksum_address

    s = order_addresses(selected)
    committed = list(committed)
    cb = {address_bytes(a) for a in committed}
    c = [a for a in s if address_bytes(a) in cb]
    if len(c) != len(cb):
        raise SecAggError("a committed node is not in the selected set", reason="not_selected")
    blobs = {address_bytes(a): v for a, v in masked_blobs.items()}
    total: dict[str, np.ndarray] | None = None
    bundles: dict[str, np.ndarray] = {}
    for node in c:
        data = blobs.get(address_bytes(node))
        if data is None:
            raise SecAggError(f"no masked blob of committed node {node}", reason="missing_blob")
        try:
            masked, bundle = decode_masked_update(
                data,
                config=secure.fixed,
                identity=UpdateIdentity(ctx.chain_id, ctx.contract, ctx.round, node),
                expected=expected,
                n_selected=len(s),
                max_bytes=max_bytes,
            )
        except InvalidBlob as exc:
            raise InvalidBlob(f"masked blob of {node}: {exc.message}", reason=exc.reason) from None
        bundles[node] = bundle
        total = masked if total is None else add_fixed(total, masked, secure.fixed)
    if total is None:
        raise UnmaskImpossible("no committed inputs", reason="too_few_shares")
    reveals: dict[str, dict[ShareRef, bytes]] = {}
    rejected: list[dict[str, str]] = []
    for poster in sorted(unmask_blobs, key=address_bytes):
        name = to_checksum_address(poster)
        try:
            reveals[name] = parse_unmask_blob(unmask_blobs[poster], ctx=ctx, holder=name, selected=s, committed=c)
        except (InvalidBlob, SecAggError) as exc:
            rejected.append({"holder": name, "reason": exc.reason})
    if len(reveals) < secure.threshold:
        raise UnmaskImpossible(f"{len(reveals)} valid unmasking blob(s), {secure.threshold} needed", reason="too_few_shares")
    recovery = recover_seeds(bundles, reveals, ctx=ctx, selected=s, committed=c, threshold=secure.threshold)
    plain = unmask_sum(total, self_seeds=recovery.self_seeds, pair_seeds=recovery.pair_seeds, config=secure.fixed)
    dim = sum(math.prod(v.shape) for v in plain.values())
    rng = check_sum_range(plain, config=secure.fixed, contributors=len(c), noise_bound=secure.noise_bound(len(c), dim))
    return UnmaskResult(
        total=plain,
        range=rng,
        posters=sorted(reveals, key=address_bytes),
        rejected=rejected + recovery.rejected,
        inconsistent=recovery.inconsistent,
        contributors=len(c),
    )
