"""Secure aggregation building blocks: keys, PRG, Shamir, share bundles, masking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec import FixedPointConfig
from fedchain.secure import SecAggError
from fedchain.secure.keys import (
    RoundContext,
    is_valid_public_key,
    order_addresses,
    pair_keys,
    pair_keys_for,
    private_key_from_seed,
    public_key,
    shared_secret,
)
from fedchain.secure.masking import mask_input, unmask_sum
from fedchain.secure.prg import expand
from fedchain.secure.shamir import PRIME, consistent, reconstruct, reconstruct_secret, split
from fedchain.secure.shares import CT_BYTES, build_share_bundle, open_own_shares, open_share, reveal_key, ShareRef

CTX = RoundContext(31337, "0x" + "ab" * 20, 7)
A, B, C = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20


def keypair(i: int) -> tuple[bytes, bytes]:
    sk = private_key_from_seed(bytes([i]) * 32)
    return sk, public_key(sk)


def test_key_agreement_is_symmetric_and_bound_to_round_and_pair():
    (sa, pa), (sb, pb), (sc, pc) = keypair(1), keypair(2), keypair(3)
    assert shared_secret(sa, pb) == shared_secret(sb, pa)
    kab = pair_keys_for(sa, A, B, pb, CTX)
    assert kab == pair_keys_for(sb, B, A, pa, CTX)
    assert len(kab.mask_seed) == 32 and len(kab.share_key) == 32 and kab.mask_seed != kab.share_key
    assert kab != pair_keys_for(sa, A, B, pb, RoundContext(31337, CTX.contract, 8))
    assert kab != pair_keys_for(sa, A, B, pb, RoundContext(1, CTX.contract, 7))
    assert kab != pair_keys_for(sa, A, B, pb, RoundContext(31337, "0x" + "cd" * 20, 7))
    assert kab != pair_keys(shared_secret(sa, pb), CTX, A, C)
    assert private_key_from_seed(b"x" * 32) == private_key_from_seed(b"x" * 32)


def test_small_order_and_malformed_public_keys_are_refused():
    sk, pk = keypair(1)
    assert is_valid_public_key(pk)
    assert not is_valid_public_key(bytes(32))  # the identity point: all-zero shared secret
    assert not is_valid_public_key(b"\x01" + bytes(31))
    assert not is_valid_public_key(pk[:31])
    with pytest.raises(SecAggError) as e:
        shared_secret(sk, bytes(32))
    assert e.value.reason == "bad_public_key"


def test_order_addresses_is_numeric_and_refuses_duplicates():
    assert order_addresses([C, A, B]) == order_addresses([A, B, C])
    assert [a.lower() for a in order_addresses([C.upper().replace("0X", "0x"), A])] == [A, C]
    with pytest.raises(SecAggError):
        order_addresses([A, A.upper().replace("0X", "0x")])


def test_prg_is_chacha20_keystream():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    seed = bytes(range(32))
    words = expand(seed, 1000)
    ks = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor().update(bytes(4000))
    assert words.dtype == np.uint32 and words.tobytes() == ks  # little-endian words of the keystream
    assert np.array_equal(expand(seed, 10), words[:10])
    w64 = expand(seed, 500, 64)
    assert w64.dtype == np.uint64 and w64.tobytes() == ks
    with pytest.raises(SecAggError):
        expand(b"short", 3)


@settings(max_examples=60, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), n=st.integers(1, 12), data=st.data())
def test_shamir_any_t_shares_reconstruct(secret, n, data):
    t = data.draw(st.integers(1, n))
    rnd = data.draw(st.binary(min_size=32, max_size=64))
    ys = split(secret, t, n, rnd)
    assert ys == split(secret, t, n, rnd)  # deterministic given the randomness
    subset = data.draw(st.lists(st.integers(1, n), min_size=t, max_size=n, unique=True))
    pts = [(x, ys[x - 1]) for x in subset]
    assert reconstruct_secret(pts, t) == secret
    assert consistent(pts, t)


def test_shamir_fewer_than_t_shares_reveal_nothing():
    secret, t, n = b"\x42" * 32, 6, 10
    ys = split(secret, t, n, b"r" * 32)
    pts = [(x, ys[x - 1]) for x in range(1, t)]  # t - 1 shares
    with pytest.raises(SecAggError) as e:
        reconstruct(pts, t)
    assert e.value.reason == "too_few_shares"
    # interpolating t - 1 shares as if the threshold were t - 1 gives garbage, not the secret
    assert reconstruct(pts, t - 1) != int.from_bytes(secret, "big")
    with pytest.raises(SecAggError) as e:
        reconstruct_secret(pts, t - 1)
    assert e.value.reason == "bad_shares"
    # perfect hiding: for ANY candidate secret, some t-th share completes the t-1 into a valid
    # sharing of it (the polynomial through (0, candidate) and the t-1 points has degree t-1)
    def lagrange_at(points, x):
        acc = 0
        for i, (xi, yi) in enumerate(points):
            num = den = 1
            for j, (xj, _) in enumerate(points):
                if i != j:
                    num, den = num * (x - xj) % PRIME, den * (xi - xj) % PRIME
            acc = (acc + yi * num * pow(den, -1, PRIME)) % PRIME
        return acc

    for candidate in (0, 1, int.from_bytes(b"\x99" * 32, "big")):
        y_t = lagrange_at([(0, candidate)] + pts, t)
        assert reconstruct(pts + [(t, y_t)], t) == candidate


def test_shamir_detects_inconsistent_shares():
    ys = split(b"\x01" * 32, 3, 5, b"r" * 32)
    pts = [(i + 1, y) for i, y in enumerate(ys)]
    assert consistent(pts, 3)
    pts[4] = (5, (pts[4][1] + 1) % PRIME)
    assert not consistent(pts, 3)


def _nodes(n):
    addrs = order_addresses(["0x%040x" % (i * 7919 + 1) for i in range(n)])
    sks = {a: private_key_from_seed(bytes([i + 1]) * 32) for i, a in enumerate(addrs)}
    pks = {a: public_key(s) for a, s in sks.items()}
    return addrs, sks, pks


def test_share_bundle_opens_for_its_holders_only_and_binds_round_and_parties():
    addrs, sks, pks = _nodes(4)
    me = addrs[1]
    keys = {p: pair_keys_for(sks[me], me, p, pks[p], CTX) for p in addrs}
    self_seed = b"\x07" * 32
    pair_seeds = {p: keys[p].mask_seed for p in addrs if p != me}
    bundle = build_share_bundle(me=me, selected=addrs, keys=keys, ctx=CTX, threshold=3, self_seed=self_seed, pair_seeds=pair_seeds, randomness=b"R" * 32)
    assert bundle.shape == (4, 4, CT_BYTES) and bundle.dtype == np.uint8
    views = {}
    for h in addrs:
        k = pair_keys_for(sks[h], h, me, pks[me], CTX)
        views[h] = open_own_shares(bundle, me=h, owner=me, keys_with_owner=k, ctx=CTX, selected=addrs)
    pts = [(i + 1, views[h][me]) for i, h in enumerate(addrs)]
    assert reconstruct_secret(pts[:3], 3) == self_seed
    peer = addrs[3]
    assert reconstruct_secret([(i + 1, views[h][peer]) for i, h in enumerate(addrs)][1:], 3) == pair_seeds[peer]
    # the revealed one-message key opens exactly one ciphertext
    h = addrs[2]
    kh = pair_keys_for(sks[h], h, me, pks[me], CTX)
    key = reveal_key(ShareRef("self", me), holder=h, keys_with_owner=kh, ctx=CTX)
    assert open_share(bundle, key=key, ctx=CTX, selected=addrs, owner=me, holder=h, subject=me) == views[h][me]
    for kwargs in (dict(holder=addrs[0]), dict(subject=peer), dict(ctx=RoundContext(31337, CTX.contract, 8))):
        args = dict(key=key, ctx=CTX, selected=addrs, owner=me, holder=h, subject=me) | kwargs
        with pytest.raises(SecAggError) as e:
            open_share(bundle, **args)
        assert e.value.reason == "bad_share"
    tampered = bundle.copy()
    tampered[2, 1, 0] ^= 1
    with pytest.raises(SecAggError):
        open_share(tampered, key=key, ctx=CTX, selected=addrs, owner=me, holder=h, subject=me)


def test_pair_masks_cancel_and_unmask_removes_the_rest():
    cfg = FixedPointConfig(clip=1.0, scale_bits=8)
    addrs, sks, pks = _nodes(5)
    rng = np.random.default_rng(3)
    xs = {a: {"t": rng.integers(0, 2**32, size=17, dtype=np.uint64).astype(np.uint32)} for a in addrs}
    selfs = {a: bytes([i + 50]) * 32 for i, a in enumerate(addrs)}
    seeds = {a: {p: pair_keys_for(sks[a], a, p, pks[p], CTX).mask_seed for p in addrs if p != a} for a in addrs}
    ys = {a: mask_input(xs[a], me=a, self_seed=selfs[a], pair_seeds=seeds[a], config=cfg) for a in addrs}
    committed = addrs[:3]
    dropped = addrs[3:]
    total = sum(ys[a]["t"] for a in committed[1:]) + ys[committed[0]]["t"]
    plain = unmask_sum({"t": total}, self_seeds={a: selfs[a] for a in committed},
                       pair_seeds={(u, d): seeds[u][d] for u in committed for d in dropped}, config=cfg)
    assert np.array_equal(plain["t"], sum(xs[a]["t"] for a in committed[1:]) + xs[committed[0]]["t"])
