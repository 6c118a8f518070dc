"""scripts/secure_curve.py: the secure-mode accuracy-vs-epsilon benchmark, on a tiny options-iv.

The noiseless secure arm (real masking and unmasking) must produce exactly the model that the
plaintext capped-weight mean of the quantised, clipped deltas gives, recomputed here from the same
round secrets; epsilon must fall as the noise multiplier grows."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedchain.codec import FixedPointConfig, dequantize, quantize
from fedchain.privacy.clipping import clip_l2
from fedchain.secure import PROTOCOL
from fedchain.secure.keys import hkdf

REPO = Path(__file__).resolve().parents[2]
TINY_PARAMS = {"train_days": 12, "val_days": 3, "quotes_scale": 0.05, "hidden": 8, "depth": 1}
TINY_TRAINING = {"epochs": 1, "batch_size": 64, "lr": 0.01}
NODES, ROUNDS, SEED = 3, 2, 1
CLIP, SCALE_BITS = 0.5, 16
MAX_SAMPLES = 100  # the tiny shards have 150, 125 and 75 rows: two are capped, one is not
ZS = (0.5, 1.0, 2.0)


def _load_script():
    spec = importlib.util.spec_from_file_location("secure_curve", REPO / "scripts" / "secure_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def tiny_run(script):
    rounds = []

    def record(**kw):
        rounds.append(kw)

    result = script.run_curve("options-iv", nodes=NODES, rounds=ROUNDS, seed=SEED, zs=ZS, clip=CLIP, scale_bits=SCALE_BITS,
                              max_samples=MAX_SAMPLES, params=TINY_PARAMS, training=TINY_TRAINING, on_round=record)
    return result, rounds


def plaintext_quantised_mean(base, trained, samples, secrets, fixed):
    """base + (Σ_u dequantize(quantize(clip(Δ_u) w_u))) / Σ_u w_u, with no masking at all."""
    total = None
    for tr, secret, n in zip(trained, secrets, samples):
        delta = {k: tr[k].astype(np.float64) - base[k].astype(np.float64) for k in base}
        clipped, _ = clip_l2(delta, fixed.clip)
        w = min(n, MAX_SAMPLES) / MAX_SAMPLES
        scaled = {k: v * w for k, v in clipped.items()} if w != 1.0 else clipped
        x = dequantize(quantize(scaled, fixed, hkdf(secret, PROTOCOL + b"/rounding", 32)), fixed)
        total = x if total is None else {k: total[k] + x[k] for k in total}  # exact: multiples of 2^-k, far below 2^53
    w_sum = 0.0
    for n in samples:
        w_sum += min(n, MAX_SAMPLES) / MAX_SAMPLES
    return {k: (base[k].astype(np.float64) + total[k].reshape(base[k].shape) / w_sum).astype(base[k].dtype) for k in base}


def test_noiseless_secure_model_is_the_plaintext_quantised_weighted_mean_to_the_bit(tiny_run, script):
    result, rounds = tiny_run
    fixed = FixedPointConfig(clip=CLIP, scale_bits=SCALE_BITS)
    secure = [r for r in rounds if r["arm"] == "secure"]
    assert [r["round"] for r in secure] == list(range(1, ROUNDS + 1))
    for r in secure:
        assert r["secrets"] == [script.round_secret(SEED, r["round"], i) for i in range(NODES)]
        want = plaintext_quantised_mean(r["base"], r["trained"], r["samples"], r["secrets"], fixed)
        assert set(want) == set(r["model"])
        for k in want:
            assert r["model"][k].dtype == want[k].dtype == np.float32
            assert np.array_equal(r["model"][k].view(np.uint32), want[k].view(np.uint32)), k
    row = next(a for a in result["arms"] if a["arm"] == "secure")
    assert row["path"] == "full" and row["shortcut_equals_unmasked_rounds"] == ROUNDS
    assert result["crypto_per_round"]["rounds"] == ROUNDS


def test_each_round_starts_from_the_previous_merged_model(tiny_run):
    _, rounds = tiny_run
    for arm in ("fedavg", "secure"):
        mine = [r for r in rounds if r["arm"] == arm]
        for before, after in zip(mine, mine[1:]):
            assert all(np.array_equal(before["model"][k], after["base"][k]) for k in before["model"])


def test_epsilon_falls_as_the_noise_multiplier_grows(tiny_run):
    result, _ = tiny_run
    noisy = [a for a in result["arms"] if a.get("noise") is not None]
    assert [a["z"] for a in noisy] == list(ZS)
    eps = [a["epsilon"] for a in noisy]
    assert all(math.isfinite(e) and e > 0 for e in eps)
    assert eps == sorted(eps, reverse=True) and len(set(eps)) == len(eps)
    assert all(a["epsilon_one_round"] < a["epsilon"] for a in noisy)  # R = 2 rounds compose
    assert all(a["path"] == "full" and a["noise"]["min_contributors"] == result["threshold"] - 1 for a in noisy)


def test_the_result_is_plain_json_with_the_gap_to_fedavg(tiny_run):
    result, _ = tiny_run
    loaded = json.loads(json.dumps(result, allow_nan=False))
    arms = [a["arm"] for a in loaded["arms"]]
    assert arms == ["fedavg", "secure"] + [f"z={z:g}" for z in ZS]
    by = {a["arm"]: a for a in loaded["arms"]}
    assert loaded["gap"] == pytest.approx(by["secure"]["rmse"] / by["fedavg"]["rmse"] - 1.0)
    assert by["fedavg"]["path"] == "plaintext" and by["fedavg"]["rmse"] > 0
    assert loaded["samples"] == [100, 100, 75] and loaded["weights"] == [1.0, 1.0, 0.75]


def test_every_option_has_help_and_a_default(script):
    for action in script.build_parser()._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        assert action.default is not None or action.dest in {"threshold", "overlay"}, action.dest  # None = N//2 + 1, no overlay
