"""Clipping, Skellam noise shares, and the RDP accountant (JSON state, recomputation, budget)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.codec import FixedPointConfig, encode_json, rounded_l2_bound
from fedchain.errors import FedchainError, InvalidBlob
from fedchain.privacy import PrivacyBudgetExceeded, PrivacyError
from fedchain.privacy.accountant import (
    PrivacyBudget,
    RoundPrivacy,
    ensure_within_budget,
    epsilon_from_rdp,
    epsilon_table,
    new_state,
    record_round,
    skellam_rdp,
    verify_state,
    would_exceed,
)
from fedchain.privacy.clipping import clip_l2, l2_norm
from fedchain.privacy.noise import SkellamNoise, node_noise, noise_linf_bound, skellam

FP = FixedPointConfig(clip=1.0, scale_bits=16)


@settings(max_examples=100, deadline=None)
@given(x=hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e9, 1e9)), clip=st.floats(1e-6, 1e6))
def test_clip_bounds_the_norm_and_keeps_small_updates(x, clip):
    out, norm = clip_l2({"a": x}, clip)
    assert l2_norm(out) <= clip
    if norm <= clip:
        assert np.array_equal(out["a"], x)
    else:
        assert np.allclose(out["a"] * norm / clip, x, rtol=1e-9, atol=0)


def test_clip_refuses_non_finite():
    with pytest.raises(InvalidBlob):
        clip_l2({"a": np.array([np.inf])}, 1.0)
    with pytest.raises(ValueError):
        clip_l2({"a": np.zeros(2)}, 0.0)


def test_skellam_shares_are_integer_seeded_and_add_up_to_the_variance():
    noise = SkellamNoise(variance=400.0, min_contributors=4)
    a = node_noise({"w": (50000,)}, noise, b"k" * 32)
    assert a["w"].dtype == np.int64 and np.array_equal(a["w"], node_noise({"w": (50000,)}, noise, b"k" * 32)["w"])
    shares = [node_noise({"w": (50000,)}, noise, bytes([i]) * 32)["w"] for i in range(4)]
    total = sum(shares)
    assert abs(total.var() / 400.0 - 1) < 0.03 and abs(total.mean()) < 0.3
    assert SkellamNoise.from_dict(json.loads(encode_json(noise.to_dict()))) == noise
    with pytest.raises(PrivacyError):
        SkellamNoise(-1.0, 3)


def test_noise_linf_bound_holds_empirically():
    rng = np.random.default_rng(0)
    v = 1e6
    draws = skellam(200000, v, rng)
    bound = noise_linf_bound(v, 200000, log2_failure=-20)
    assert np.max(np.abs(draws)) <= bound < 8 * math.sqrt(v)
    assert noise_linf_bound(0.0, 10) == 0


def test_skellam_rdp_tends_to_the_gaussian():
    # large variance: the correction term vanishes and the curve is the Gaussian's alpha D^2 / (2 sigma^2)
    l2 = 1000.0
    mu = (2 * l2) ** 2
    for alpha in (2, 10, 64):
        gauss = alpha * l2 * l2 / (2 * mu)
        assert gauss <= skellam_rdp(alpha, l2 * math.sqrt(1e4), l2, mu) <= gauss * 1.01
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant as rdp

    acc = rdp.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(2.0), 10)
    state = new_state(1e-5)
    params = RoundPrivacy(l2_sensitivity=l2, l1_sensitivity=l2 * 100, variance=mu)
    for r in range(10):
        state = record_round(state, r + 1, params)
    assert state["epsilon"] == pytest.approx(acc.get_epsilon(1e-5), rel=0.02)


def test_accountant_state_is_json_and_recomputable():
    noise = SkellamNoise.from_noise_multiplier(1.0, rounded_l2_bound(FP.clip * FP.scale, 1000), min_contributors=5)
    params = RoundPrivacy.for_round(FP, 1000, noise, contributors=6)
    state = new_state(1e-5)
    assert verify_state(state) == 0.0
    s1 = record_round(state, 1, params)
    s2 = record_round(s1, 2, params)
    assert state["rounds"] == [] and len(s1["rounds"]) == 1  # pure
    assert 0 < s1["epsilon"] < s2["epsilon"] < 2 * s1["epsilon"]
    assert s2["rounds"][1]["epsilon"] == pytest.approx(s1["epsilon"])
    doc = json.loads(encode_json(s2))
    assert verify_state(doc) == pytest.approx(s2["epsilon"])
    tampered = json.loads(encode_json(s2))
    tampered["epsilon"] = s2["epsilon"] / 2
    with pytest.raises(PrivacyError):
        verify_state(tampered)
    tampered = json.loads(encode_json(s2))
    tampered["rounds"][0]["variance"] *= 4  # claims more noise than charged
    with pytest.raises(PrivacyError):
        verify_state(tampered)
    with pytest.raises(PrivacyError):
        record_round(s2, 2, params)


def test_colluders_and_own_share_are_not_credited():
    noise = SkellamNoise(variance=1e10, min_contributors=5)
    plain = RoundPrivacy.for_round(FP, 100, noise, contributors=6)
    assert plain.variance == pytest.approx(1e10)
    assert RoundPrivacy.for_round(FP, 100, noise, contributors=6, colluders=2).variance == pytest.approx(0.6e10)
    assert RoundPrivacy.for_round(FP, 100, noise, contributors=10).variance == pytest.approx(1.8e10)


def test_would_exceed_and_the_named_error():
    noise = SkellamNoise.from_noise_multiplier(1.0, rounded_l2_bound(FP.scale, 1000), min_contributors=5)
    params = RoundPrivacy.for_round(FP, 1000, noise)
    one = epsilon_from_rdp([skellam_rdp(a, params.l1_sensitivity, params.l2_sensitivity, params.variance) for a in new_state(1e-5)["orders"]],
                           new_state(1e-5)["orders"], 1e-5)[0]
    budget = {"epsilon": one * 1.2, "delta": 1e-5}  # RDP composes sublinearly: 2 rounds < 2x
    state = new_state(1e-5)
    assert not would_exceed(state, params, budget)
    ensure_within_budget(state, params, budget)
    state = record_round(state, 1, params)
    assert would_exceed(state, params, PrivacyBudget(**budget))
    with pytest.raises(PrivacyBudgetExceeded) as e:
        ensure_within_budget(state, params, budget)
    assert isinstance(e.value, FedchainError) and e.value.http_status == 409
    assert e.value.epsilon > e.value.budget == budget["epsilon"] and e.value.reason == "privacy_budget_exceeded"
    assert not would_exceed(state, RoundPrivacy(0.0, 0.0, 0.0), budget)  # a round with nothing released costs nothing
    assert would_exceed(state, RoundPrivacy(10.0, 10.0, 0.0), budget)  # no noise: infinite epsilon


def test_epsilon_table_shows_small_cohorts_pay_more_for_the_same_accuracy():
    rows = epsilon_table(nodes=(5, 50), noise_on_mean=(0.05,), rounds=(1, 10))
    small, large = rows
    assert small["epsilon"][1] > 5 * large["epsilon"][1]
    assert small["epsilon"][10] > small["epsilon"][1]
