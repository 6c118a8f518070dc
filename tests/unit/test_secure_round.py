"""A simulated secure round: 10 nodes, t = 6, dropouts before committing and before unmasking.

The unmasked sum equals the plaintext fixed-point sum exactly whenever >= t committed nodes post
their unmasking blobs, and unmasking is impossible otherwise. A masked blob looks uniform; a
survivor reveals only what the on-chain set implies; malformed blobs and out-of-range sums meet
their reason codes."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedchain.codec import FixedPointConfig, UpdateIdentity, decode_int_tensors, encode_fixed, encode_json, quantize, sum_fixed
from fedchain.errors import InvalidBlob
from fedchain.privacy.clipping import clip_l2
from fedchain.privacy.noise import SkellamNoise, add_noise, node_noise
from fedchain.secure import PROTOCOL, RevealRefused, UnmaskImpossible
from fedchain.secure.blob import decode_masked_update, encode_masked_update
from fedchain.secure.keys import RoundContext, hkdf, order_addresses, private_key_from_seed, public_key
from fedchain.secure.masking import mask_input
from fedchain.secure.pipeline import SecureConfig, node_keys, node_masked_update, node_unmask_blob, unmask_round
from fedchain.secure.shares import SHARES_TENSOR, ShareRef, build_share_bundle
from fedchain.secure.unmasking import build_unmask_blob, check_reveal, check_sum_range, parse_unmask_blob, reveal_plan

N, T = 10, 6
CTX = RoundContext(31337, "0x" + "ab" * 20, 12)
SPEC = {"layer.bias": (4,), "layer.weight": (24, 4)}
CFG = SecureConfig(FixedPointConfig(clip=1.0, scale_bits=16), threshold=T)
ADDRS = order_addresses(["0x%040x" % ((i + 1) * 0x1F2E3D4C5B6A79881726354) for i in range(N)])
SKS = {a: private_key_from_seed(bytes([i + 1]) * 32) for i, a in enumerate(ADDRS)}
PKS = {a: public_key(s) for a, s in SKS.items()}
SECRETS = {a: bytes([i + 101]) * 32 for i, a in enumerate(ADDRS)}
rng0 = np.random.default_rng(2024)
DELTAS = {a: {k: rng0.normal(size=s) * (0.05 if i % 2 else 0.5) for k, s in SPEC.items()} for i, a in enumerate(ADDRS)}


@functools.lru_cache(maxsize=None)
def masked_blobs(cfg_json: bytes = b"") -> dict[str, bytes]:
    cfg = CFG if not cfg_json else SecureConfig.from_dict(__import__("json").loads(cfg_json))
    return {
        a: node_masked_update(DELTAS[a], secure=cfg, ctx=CTX, me=a, private_key=SKS[a], selected=ADDRS, public_keys=PKS, secret=SECRETS[a])
        for a in ADDRS
    }


def plaintext_sum(nodes, cfg: SecureConfig = CFG):
    parts = []
    for a in nodes:
        clipped, _ = clip_l2(DELTAS[a], cfg.fixed.clip)
        q = quantize(clipped, cfg.fixed, hkdf(SECRETS[a], PROTOCOL + b"/rounding", 32))
        if cfg.noise is not None:
            q = add_noise(q, node_noise(SPEC, cfg.noise, hkdf(SECRETS[a], PROTOCOL + b"/noise", 32)), cfg.fixed)
        parts.append(q)
    return sum_fixed(parts, cfg.fixed)


def run_round(committed, posters, cfg: SecureConfig = CFG, blobs=None):
    blobs = blobs if blobs is not None else masked_blobs(encode_json(cfg.to_dict()) if cfg is not CFG else b"")
    unmask = {a: node_unmask_blob(me=a, private_key=SKS[a], ctx=CTX, selected=ADDRS, committed=committed, public_keys=PKS) for a in posters}
    return unmask_round({a: blobs[a] for a in committed}, unmask, secure=cfg, ctx=CTX, selected=ADDRS, committed=committed, expected=SPEC)


def test_masked_update_is_deterministic_given_the_node_secret():
    a = ADDRS[0]
    again = node_masked_update(DELTAS[a], secure=CFG, ctx=CTX, me=a, private_key=SKS[a], selected=ADDRS, public_keys=PKS, secret=SECRETS[a])
    assert again == masked_blobs()[a]
    other = node_masked_update(DELTAS[a], secure=CFG, ctx=CTX, me=a, private_key=SKS[a], selected=ADDRS, public_keys=PKS, secret=b"z" * 32)
    assert other != again


def test_three_drop_before_commit_one_after_still_unmasks_exactly():
    committed = [a for i, a in enumerate(ADDRS) if i not in (1, 4, 8)]  # 3 uploaded but never committed
    posters = committed[1:]  # 1 committed, then vanished before unmasking: 6 posters = t
    result = run_round(committed, posters)
    want = plaintext_sum(committed)
    assert all(np.array_equal(result.total[k], want[k]) for k in SPEC)
    assert result.range.ok and result.contributors == 7 and len(result.posters) == T and result.rejected == []


def test_fewer_than_t_posters_cannot_unmask():
    committed = [a for i, a in enumerate(ADDRS) if i not in (1, 4, 8)]
    with pytest.raises(UnmaskImpossible) as e:
        run_round(committed, committed[2:])  # 5 < t
    assert e.value.reason == "too_few_shares"


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_unmasked_sum_equals_plaintext_sum_for_random_dropouts(data):
    before = data.draw(st.sets(st.sampled_from(ADDRS), max_size=4), label="drop before commit")
    committed = [a for a in ADDRS if a not in before]
    after = data.draw(st.sets(st.sampled_from(committed), max_size=4), label="drop before unmask")
    posters = [a for a in committed if a not in after]
    if len(posters) < T:
        with pytest.raises(UnmaskImpossible):
            run_round(committed, posters)
        return
    result = run_round(committed, posters)
    want = plaintext_sum(committed)
    assert all(np.array_equal(result.total[k], want[k]) for k in SPEC)
    assert result.range.ok


def test_masked_blob_looks_uniform_and_plaintext_does_not():
    big = {"w": (6000,)}
    rng = np.random.default_rng(5)
    a = ADDRS[3]
    delta = {"w": rng.normal(size=6000) * 1e-3}
    blob = node_masked_update(delta, secure=CFG, ctx=CTX, me=a, private_key=SKS[a], selected=ADDRS, public_keys=PKS, secret=SECRETS[a])
    masked, _ = decode_masked_update(blob, config=CFG.fixed, identity=UpdateIdentity(CTX.chain_id, CTX.contract, CTX.round, a), expected=big, n_selected=N)
    clipped, _ = clip_l2(delta, 1.0)
    plain = quantize(clipped, CFG.fixed, b"p" * 32)
    for arr, uniform in ((masked["w"], True), (plain["w"], False)):
        counts = np.bincount(arr.view(np.uint8), minlength=256)
        p_bytes = stats.chisquare(counts).pvalue
        p_words = stats.kstest(arr.astype(np.float64) / 2**32, "uniform").pvalue
        if uniform:
            assert p_bytes > 1e-3 and p_words > 1e-3
        else:
            assert p_bytes < 1e-12 and p_words < 1e-12


def test_reveal_plan_follows_the_on_chain_sets():
    committed = ADDRS[:7]
    plan = reveal_plan(ADDRS, committed)
    assert [r for r in plan if r.kind == "self"] == [ShareRef("self", a) for a in committed]
    assert {(r.owner, r.peer) for r in plan if r.kind == "pair"} == {(u, d) for u in committed for d in ADDRS[7:]}
    check_reveal(plan, ADDRS, committed)


def test_a_survivor_refuses_both_shares_of_one_peer():
    committed = ADDRS[:7]
    u, d = ADDRS[0], ADDRS[8]
    # the aggregator asks for d's self mask AND the pair seed of u with d: together they would unmask d
    # (within one set the two are contradictory: d committed forbids the pair share, d dropped the self share)
    with pytest.raises(RevealRefused) as e:
        check_reveal([ShareRef("self", d), ShareRef("pair", u, d)], ADDRS, ADDRS)
    assert e.value.reason == "peer_committed"
    with pytest.raises(RevealRefused) as e:
        check_reveal([ShareRef("self", d), ShareRef("pair", u, d)], ADDRS, committed)
    assert e.value.reason == "not_committed"
    with pytest.raises(RevealRefused) as e:
        check_reveal([ShareRef("pair", u, d)], ADDRS, committed, already=[ShareRef("self", d)])
    assert e.value.reason == "both_kinds_for_peer"
    # a changed story: d was "dropped" (pair seeds revealed), now it is "committed" (self mask asked)
    first = reveal_plan(ADDRS, committed)
    with pytest.raises(RevealRefused) as e:
        node_unmask_blob(me=ADDRS[1], private_key=SKS[ADDRS[1]], ctx=CTX, selected=ADDRS, committed=ADDRS[:9], public_keys=PKS, already=first)
    assert e.value.reason == "both_kinds_for_peer"
    # what the on-chain set does not imply is refused on its own
    for refs, reason in (
        ([ShareRef("self", d)], "not_committed"),
        ([ShareRef("pair", u, ADDRS[1])], "peer_committed"),
        ([ShareRef("pair", d, u)], "not_committed"),
        ([ShareRef("self", "0x" + "77" * 20)], "not_selected"),
    ):
        with pytest.raises(RevealRefused) as e:
            check_reveal(refs, ADDRS, committed)
        assert e.value.reason == reason


def test_unmask_blob_is_checked_against_round_node_and_sets():
    committed = ADDRS[:8]
    me = ADDRS[2]
    blob = node_unmask_blob(me=me, private_key=SKS[me], ctx=CTX, selected=ADDRS, committed=committed, public_keys=PKS)
    refs = parse_unmask_blob(blob, ctx=CTX, holder=me, selected=ADDRS, committed=committed)
    assert set(refs) == set(reveal_plan(ADDRS, committed))
    for kwargs, reason in (
        (dict(holder=ADDRS[3]), "not_own_update"),
        (dict(ctx=RoundContext(31337, CTX.contract, 13)), "not_own_update"),
        (dict(committed=ADDRS[:9]), "wrong_committed_set"),
    ):
        args = dict(ctx=CTX, holder=me, selected=ADDRS, committed=committed) | kwargs
        with pytest.raises(InvalidBlob) as e:
            parse_unmask_blob(blob, **args)
        assert e.value.reason == reason
    # an over-reveal (a pair seed between two committed nodes) is rejected
    import json

    doc = json.loads(blob)
    doc["pair"].setdefault(ADDRS[0], {})[ADDRS[1]] = "00" * 32
    with pytest.raises(InvalidBlob) as e:
        parse_unmask_blob(encode_json(doc), ctx=CTX, holder=me, selected=ADDRS, committed=committed)
    assert e.value.reason == "wrong_reveals"


def test_a_wrong_revealed_key_is_rejected_and_the_others_suffice():
    import json

    committed = ADDRS[:8]
    posters = committed  # 8 >= t
    unmask = {a: node_unmask_blob(me=a, private_key=SKS[a], ctx=CTX, selected=ADDRS, committed=committed, public_keys=PKS) for a in posters}
    doc = json.loads(unmask[ADDRS[0]])
    owner = ADDRS[5]
    doc["self"][owner] = "11" * 32
    unmask[ADDRS[0]] = encode_json(doc)
    unmask[ADDRS[1]] = b"not json"
    blobs = masked_blobs()
    result = unmask_round({a: blobs[a] for a in committed}, unmask, secure=CFG, ctx=CTX, selected=ADDRS, committed=committed, expected=SPEC)
    want = plaintext_sum(committed)
    assert all(np.array_equal(result.total[k], want[k]) for k in SPEC)
    reasons = {(r["holder"], r["reason"]) for r in result.rejected}
    assert (ADDRS[0], "bad_share") in reasons and (ADDRS[1], "malformed") in reasons


def test_malformed_masked_blobs_meet_reason_codes():
    committed = ADDRS[:7]
    blobs = dict(masked_blobs())
    victim = committed[2]
    ident = UpdateIdentity(CTX.chain_id, CTX.contract, CTX.round, victim)
    arrays, meta = decode_int_tensors(blobs[victim], dtypes={"*": "U32", SHARES_TENSOR: "U8"}, extras=(SHARES_TENSOR,))
    cases = {
        "not_own_update": blobs[committed[3]],  # a copy of another node's blob
        "malformed": blobs[victim][:-5],
        "wrong_dtype": encode_fixed({k: v.astype(np.uint64) for k, v in arrays.items() if k != SHARES_TENSOR},
                                    FixedPointConfig(clip=1.0, scale_bits=16, modulus_bits=64), identity=ident),
        "wrong_shape": encode_masked_update({**{k: v for k, v in arrays.items() if k != SHARES_TENSOR}, "layer.bias": np.zeros(5, np.uint32)},
                                            arrays[SHARES_TENSOR], CFG.fixed, ident),
        "bad_shares": encode_masked_update({k: v for k, v in arrays.items() if k != SHARES_TENSOR},
                                           np.zeros((N - 1, N - 1, 82), np.uint8), CFG.fixed, ident),
    }
    for reason, data in cases.items():
        bad = dict(blobs, **{victim: data})
        with pytest.raises(InvalidBlob) as e:
            run_round(committed, committed, blobs=bad)
        assert e.value.reason == reason, reason
        assert victim in e.value.message


def test_an_unclipped_input_makes_the_sum_out_of_range():
    committed = ADDRS[:7]
    blobs = dict(masked_blobs())
    cheat = committed[4]
    loose = FixedPointConfig(clip=2000.0, scale_bits=16)
    x = {k: np.full(s, 0.9) for k, s in SPEC.items()}  # L2 ~ 9 > C = 1
    residues = quantize(x, loose, b"c" * 32)
    keys = node_keys(SKS[cheat], cheat, ADDRS, PKS, CTX)
    pair = {p: k.mask_seed for p, k in keys.items() if p != cheat}
    self_seed = hkdf(SECRETS[cheat], PROTOCOL + b"/self-mask", 32)
    masked = mask_input(residues, me=cheat, self_seed=self_seed, pair_seeds=pair, config=CFG.fixed)
    bundle = build_share_bundle(me=cheat, selected=ADDRS, keys=keys, ctx=CTX, threshold=T, self_seed=self_seed, pair_seeds=pair, randomness=b"q" * 32)
    blobs[cheat] = encode_masked_update(masked, bundle, CFG.fixed, UpdateIdentity(CTX.chain_id, CTX.contract, CTX.round, cheat))
    result = run_round(committed, committed, blobs=blobs)
    assert not result.range.ok and result.range.reason == "sum_out_of_range"
    honest = plaintext_sum(committed)
    assert check_sum_range(honest, config=CFG.fixed, contributors=7).ok


def test_noisy_round_unmasks_to_plaintext_plus_every_noise_share():
    cfg = SecureConfig(CFG.fixed, threshold=T, noise=SkellamNoise(variance=float(2**16) ** 2, min_contributors=5))
    committed = ADDRS[1:]
    result = run_round(committed, committed, cfg=cfg)
    want = plaintext_sum(committed, cfg)
    assert all(np.array_equal(result.total[k], want[k]) for k in SPEC)
    assert result.range.ok
    noiseless = plaintext_sum(committed)
    diff = (result.total["layer.weight"] - noiseless["layer.weight"]).view(np.int32).astype(np.float64)
    want_std = (cfg.noise.summed_variance(9)) ** 0.5  # 9 contributors, each variance / 5
    assert 0.7 * want_std < diff.std() < 1.3 * want_std


def test_secure_config_json_and_headroom():
    cfg = SecureConfig(FixedPointConfig(clip=1.0, scale_bits=16), threshold=6, noise=SkellamNoise(1e9, 5))
    assert SecureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(Exception) as e:
        SecureConfig(FixedPointConfig(clip=1.0, scale_bits=28), threshold=6).check_cohort(10)
    assert getattr(e.value, "reason", "") == "no_headroom"
    with pytest.raises(Exception) as e:
        SecureConfig(FixedPointConfig(clip=1.0, scale_bits=16), threshold=11).check_cohort(10)
    assert getattr(e.value, "reason", "") == "bad_threshold"
