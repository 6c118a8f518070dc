"""Secure mode's round core (fedchain.aggregator.secure_compute / secure_merge) and the audit of
it (fedchain.verify.audit_secure), on blobs made by the real node pipeline: 5 nodes, t = 3."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fedchain.aggregator.compute import RoundContext
from fedchain.aggregator.config import RoundRules, SecureSettings
from fedchain.aggregator.secure_compute import SecureRoundInputs, compute_secure_round, seal_decisions
from fedchain.aggregator.secure_merge import secure_model, secure_weight, weight_sum
from fedchain.aggregator.service import build_config
from fedchain.chain.types import Commitment
from fedchain.codec import FixedPointConfig, decode_tensors, dequantize, encode_json, encode_update, quantize, sum_fixed
from fedchain.errors import ConfigError, InvalidBlob
from fedchain.hashing import commitment
from fedchain.privacy.accountant import verify_state
from fedchain.privacy.clipping import clip_l2
from fedchain.secure import PROTOCOL
from fedchain.secure.keys import RoundContext as SecureContext
from fedchain.secure.keys import hkdf, order_addresses, private_key_from_seed, public_key
from fedchain.secure.pipeline import SecureConfig, node_masked_update, node_unmask_blob
from fedchain.verify import VerifyResult, audit_secure

N, T, MAX_SAMPLES = 5, 3, 1000
CTX = RoundContext(31337, "0x" + "cd" * 20, 4)
SCTX = SecureContext(31337, CTX.contract, 4)
ADDRS = order_addresses(["0x%040x" % ((i + 7) * 0x9E3779B97F4A7C15) for i in range(N)])
SKS = {a: private_key_from_seed(bytes([i + 1]) * 32) for i, a in enumerate(ADDRS)}
PKS = {a: public_key(s) for a, s in SKS.items()}
SECRETS = {a: bytes([i + 50]) * 32 for i, a in enumerate(ADDRS)}
SAMPLES = {a: 200 * (i + 1) for i, a in enumerate(ADDRS)}
rng = np.random.default_rng(7)
BASE = {"b": rng.normal(size=(3,)).astype(np.float32), "w": rng.normal(size=(4, 3)).astype(np.float32)}
DELTAS = {a: {k: rng.normal(size=v.shape) * 0.1 for k, v in BASE.items()} for a in ADDRS}
SECURE = SecureConfig(FixedPointConfig(clip=1.0, scale_bits=16), threshold=T)


def config(noise_multiplier: float | None = None, state_hash: str | None = None, strategy: str = "fedavg") -> dict:
    secure = SecureSettings(clip=1.0, scale_bits=16, threshold=T, noise_multiplier=noise_multiplier).config_for(N, 15)
    return build_config(task_spec="options-iv", task_params={}, training={}, strategy={"name": strategy, "params": {}},
                        seed=1, round_id=4, min_updates=T, eval_seed=0, max_samples=MAX_SAMPLES,
                        secure=secure.to_dict(), unmask_window=10,
                        privacy={"delta": 1e-5, "colluders": 0, "budget": None, "state_hash": state_hash})


@functools.lru_cache(maxsize=None)
def masked(cfg_json: str, node: str, clip_override: float | None = None) -> bytes:
    import json

    rules = RoundRules.of(json.loads(cfg_json))
    sec = rules.secure
    delta = DELTAS[node]
    if clip_override is not None:  # a hostile node that does not clip (a huge update)
        sec = SecureConfig(FixedPointConfig(clip=clip_override, scale_bits=16), threshold=T, noise=sec.noise)
        delta = {k: v * 1000 for k, v in delta.items()}
    return node_masked_update(delta, secure=sec, ctx=SCTX, me=node, private_key=SKS[node], selected=ADDRS,
                              public_keys=PKS, secret=SECRETS[node], weight=secure_weight(SAMPLES[node], MAX_SAMPLES))


def round_inputs(cfg: dict, *, committed=ADDRS, excluded=(), posters=None, unclipped=None):
    """(inputs, blobs by hash): committers commit their masked blob's hash; posters post unmasking blobs."""
    cj = encode_json(cfg).decode()
    blobs: dict[str, bytes] = {}
    commitments = []
    for a in committed:
        data = masked(cj, a, 4000.0 if a == unclipped else None)
        blobs[commitment(data)] = data
        commitments.append(Commitment(CTX.round_id, a, commitment(data), SAMPLES[a]))
    survivors = [a for a in committed if a not in excluded]
    posts = []
    for a in (posters if posters is not None else survivors):
        u = node_unmask_blob(me=a, private_key=SKS[a], ctx=SCTX, selected=ADDRS, committed=survivors, public_keys=PKS)
        blobs[commitment(u)] = u
        posts.append((a, commitment(u)))
    return SecureRoundInputs(selected=list(ADDRS), public_keys=PKS, commitments=commitments,
                             excluded=list(excluded), posts=posts), blobs


def expected_model(nodes) -> dict[str, np.ndarray]:
    """base + Σ w_u q(clip(Δ_u) w_u) / Σ w_u, recomputed from the codec alone."""
    parts = []
    for a in nodes:
        w = secure_weight(SAMPLES[a], MAX_SAMPLES)
        clipped, _ = clip_l2(DELTAS[a], SECURE.fixed.clip)
        parts.append(quantize({k: v * w for k, v in clipped.items()}, SECURE.fixed,
                              hkdf(SECRETS[a], PROTOCOL + b"/rounding", 32)))
    total = dequantize(sum_fixed(parts, SECURE.fixed), SECURE.fixed)
    ws = weight_sum([SAMPLES[a] for a in nodes], MAX_SAMPLES)
    return {k: (BASE[k].astype(np.float64) + total[k] / ws).astype(np.float32) for k in BASE}


def test_secure_round_model_is_capped_weight_fedavg_of_the_quantised_clipped_deltas():
    cfg = config()
    dropped = ADDRS[1]
    committed = [a for a in ADDRS if a != dropped]
    inputs, blobs = round_inputs(cfg, committed=committed, posters=committed[:T])
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    assert comp.model_hash is not None, comp.details
    want = expected_model(committed)
    for k in BASE:
        assert np.array_equal(comp.model[k], want[k])  # bit-exact
    weights = {d.node: d.weight for d in comp.decisions}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights[committed[-1]] > weights[committed[0]]  # more samples, more weight
    assert comp.details["secure"]["contributors"] == len(committed)


def test_plain_fedavg_and_the_secure_merge_agree_up_to_quantisation():
    cfg = config()
    inputs, blobs = round_inputs(cfg)
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    ws = weight_sum([SAMPLES[a] for a in ADDRS], MAX_SAMPLES)
    plain = {k: BASE[k] + sum(secure_weight(SAMPLES[a], MAX_SAMPLES) * DELTAS[a][k] for a in ADDRS) / ws for k in BASE}
    for k in BASE:
        assert np.max(np.abs(comp.model[k] - plain[k])) < N / 2**16 / ws + 1e-6


def test_seal_excludes_missing_copied_and_float_blobs_with_their_reasons():
    cfg = config()
    inputs, blobs = round_inputs(cfg)
    a, b, c = ADDRS[0], ADDRS[1], ADDRS[2]
    del blobs[inputs.commitments[0].update_hash]  # a: committed, never uploaded
    plain = encode_update(BASE, CTX.identity(c))  # c: a transparent (float) blob
    blobs[commitment(plain)] = plain
    commitments = list(inputs.commitments)
    commitments[1] = Commitment(CTX.round_id, b, inputs.commitments[3].update_hash, SAMPLES[b])  # b copies d's hash
    commitments[2] = Commitment(CTX.round_id, c, commitment(plain), SAMPLES[c])
    from dataclasses import replace

    decisions = {d.node: d for d in seal_decisions(cfg, BASE, replace(inputs, commitments=commitments), blobs.get, CTX)}
    assert decisions[a].code == "missing_upload"
    assert decisions[b].code == "not_own_update"
    assert decisions[c].code == "wrong_dtype"
    assert decisions[ADDRS[3]].accepted and decisions[ADDRS[4]].accepted


def test_a_committer_outside_the_secure_set_is_excluded_as_not_selected():
    cfg = config()
    inputs, blobs = round_inputs(cfg)
    from dataclasses import replace

    keys = dict(PKS)
    keys[ADDRS[2]] = b"\x00" * 32  # a small-order key: not a valid X25519 key
    decisions = {d.node: d for d in seal_decisions(cfg, BASE, replace(inputs, public_keys=keys), blobs.get, CTX)}
    assert decisions[ADDRS[2]].code == "not_selected"


def test_an_unclipped_node_makes_the_round_fail_as_sum_out_of_range():
    cfg = config()
    inputs, blobs = round_inputs(cfg, unclipped=ADDRS[0])
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    assert comp.model_hash is None
    assert comp.details["error"].startswith("sum_out_of_range")


def test_fewer_than_t_unmasking_posts_leave_no_model_and_say_why():
    cfg = config()
    inputs, blobs = round_inputs(cfg, posters=ADDRS[: T - 1])
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    assert comp.model_hash is None and "too_few_shares" in comp.details["error"]


def test_noisy_round_composes_the_accountant_state_round_by_round():
    cfg = config(noise_multiplier=0.5)
    inputs, blobs = round_inputs(cfg)
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    state = comp.details["privacy_state"]
    assert [r["round"] for r in state["rounds"]] == [CTX.round_id]
    assert verify_state(state) == pytest.approx(state["epsilon"])
    from fedchain.aggregator.secure_compute import privacy_after

    later = privacy_after(RoundRules.of(cfg), state, CTX.round_id + 1, 15, N)
    assert [r["round"] for r in later["rounds"]] == [CTX.round_id, CTX.round_id + 1]
    assert later["epsilon"] > state["epsilon"] and state == comp.details["privacy_state"]  # the input is unchanged


def test_secure_config_refuses_a_robust_strategy_and_says_why():
    with pytest.raises(InvalidBlob, match="robust rules need each node's update"):
        config(strategy="krum")


def test_secure_settings_default_to_a_majority_threshold_and_noise_planned_for_it():
    cfg = SecureSettings(noise_multiplier=1.0, colluders=1).config_for(10, 1000)
    assert cfg.threshold == 6 and cfg.noise.min_contributors == 4
    with pytest.raises(ConfigError):
        SecureSettings(threshold=11).config_for(10, 1000)


def _report(cfg, comp, inputs) -> dict:
    return {"updates": [d.to_json() for d in comp.decisions], "global_model_hash": comp.model_hash,
            "secure": {**comp.details["secure"], "excluded": list(inputs.excluded),
                       "posts": [{"node": n, "unmask_hash": h} for n, h in inputs.posts]},
            "privacy": comp.details.get("privacy_state")}


def test_audit_of_an_honest_secure_round_passes_and_recomputes_the_model():
    cfg = config(noise_multiplier=0.5)
    inputs, blobs = round_inputs(cfg)
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    res = audit_secure(VerifyResult(4, False), cfg, BASE, inputs, _report(cfg, comp, inputs), blobs.get, CTX, {},
                       onchain_model_hash=comp.model_hash, onchain_accepted=N, min_updates=T)
    assert res.problems == [] and res.recomputed_model_hash == comp.model_hash


def test_audit_catches_a_seal_that_excluded_a_valid_masked_update():
    cfg = config()
    victim = ADDRS[4]
    inputs, blobs = round_inputs(cfg, excluded=(victim,))
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T,
                                exclusions={victim: "malformed: claimed by the aggregator"})
    assert comp.model_hash is not None
    res = audit_secure(VerifyResult(4, False), cfg, BASE, inputs, _report(cfg, comp, inputs), blobs.get, CTX, {},
                       onchain_model_hash=comp.model_hash, onchain_accepted=N - 1, min_updates=T)
    assert any("but it checks out" in p for p in res.problems), res.problems


def test_audit_catches_a_posted_model_that_is_not_the_unmasked_sum():
    cfg = config()
    inputs, blobs = round_inputs(cfg)
    comp = compute_secure_round(cfg, BASE, inputs, blobs.get, CTX, min_updates=T)
    forged = secure_model(BASE, {k: np.zeros(v.shape, np.uint32) for k, v in BASE.items()}, SECURE.fixed, 1.0)
    from fedchain.codec import encode_tensors

    fake = commitment(encode_tensors(forged))
    report = _report(cfg, comp, inputs) | {"global_model_hash": fake}
    res = audit_secure(VerifyResult(4, False), cfg, BASE, inputs, report, blobs.get, CTX, {},
                       onchain_model_hash=fake, onchain_accepted=N, min_updates=T)
    assert any("global model hash differs" in p for p in res.problems)
    assert decode_tensors(encode_tensors(forged))  # the forged model is a well-formed model


def test_round_config_refuses_a_close_window_not_above_the_relay_cutoff_as_bad_config():
    ok = build_config(task_spec="tiny", task_params={}, training={}, strategy={"name": "fedavg", "params": {}},
                      seed=1, round_id=1, min_updates=1, eval_seed=0, relay_cutoff=5, close_window=6)
    assert RoundRules.of(ok).close_window == 6
    bad = dict(ok, close_window=5)
    with pytest.raises(InvalidBlob, match="close_window: the close window .* must exceed the relay cut-off") as e:
        RoundRules.of(bad)
    assert e.value.reason == "bad_config"
