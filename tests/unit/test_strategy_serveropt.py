"""Server optimisers (FedAvgM, FedAdam, FedYogi; Reddi et al. 2021, Algorithm 2) and FedProx's
server side: against float64 references written here, state carried over rounds, bit-exact under
any input order, state validation, parameter errors."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from fedchain.codec import encode_tensors
from fedchain.errors import ConfigError
from fedchain.strategy import STRATEGIES, ClientUpdate, FedAvg, ServerOptimizer, get_strategy, param_names
from fedchain.strategy.base import AggregationError

SHAPES = {"l1.weight": (5, 3), "l1.bias": (5,), "out": (2, 5)}
NAMES = sorted(SHAPES)
OPTIMISERS = ["fedavgm", "fedadam", "fedyogi"]


def make_round(n: int, seed: int, base=None):
    rng = np.random.default_rng(seed)
    if base is None:
        base = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    updates = []
    for i in range(n):
        w = {k: (base[k].astype(np.float64) + 0.1 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
        updates.append(ClientUpdate("0x" + rng.bytes(20).hex(), w, int(rng.integers(1, 500))))
    return base, updates


def pseudo_gradient(base, updates):
    total = sum(u.num_samples for u in updates)
    return {k: sum(u.num_samples / total * (u.weights[k].astype(np.float64) - base[k].astype(np.float64))
                   for u in updates) for k in NAMES}


def ref_step(name, params, base, updates, state):
    """Algorithm 2 of Reddi et al. (and FedAvgM) in plain float64, moments rounded to float32."""
    p = get_strategy(name, params).params
    d = pseudo_gradient(base, updates)
    model, new = {}, {}
    for k in NAMES:
        if name == "fedavgm":
            m_prev = state[f"m.{k}"].astype(np.float64) if state else 0.0
            m = p["momentum"] * m_prev + d[k]
            m32 = m.astype(np.float32)
            new[f"m.{k}"] = m32
            model[k] = (base[k].astype(np.float64) + p["server_lr"] * m32.astype(np.float64)).astype(np.float32)
            continue
        tau, b1, b2 = p["tau"], p["beta1"], p["beta2"]
        m_prev = state[f"m.{k}"].astype(np.float64) if state else np.zeros(SHAPES[k])
        v_prev = state[f"v.{k}"].astype(np.float64) if state else np.full(SHAPES[k], tau * tau)
        m = b1 * m_prev + (1 - b1) * d[k]
        if name == "fedadam":
            v = b2 * v_prev + (1 - b2) * d[k] ** 2
        else:
            v = v_prev - (1 - b2) * d[k] ** 2 * np.sign(v_prev - d[k] ** 2)
        m32, v32 = m.astype(np.float32), v.astype(np.float32)
        new[f"m.{k}"], new[f"v.{k}"] = m32, v32
        step = m32.astype(np.float64) / (np.sqrt(v32.astype(np.float64)) + tau)
        model[k] = (base[k].astype(np.float64) + p["server_lr"] * step).astype(np.float32)
    return model, new


def assert_close(a, b, tol=2e-6):
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == np.float32 and a[k].shape == b[k].shape
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("name,params", [
    ("fedavgm", {}), ("fedavgm", {"server_lr": 0.5, "momentum": 0.0}),
    ("fedadam", {}), ("fedadam", {"server_lr": 0.1, "beta1": 0.5, "beta2": 0.9, "tau": 0.01}),
    ("fedyogi", {}), ("fedyogi", {"server_lr": 0.05, "tau": 1e-4}),
])
def test_three_rounds_follow_algorithm_2(name, params):
    s = get_strategy(name, params)
    base, updates = make_round(6, seed=1)
    state = ref_state = None
    for r in range(3):
        out = s.step(base, updates, state)
        ref_model, ref_new = ref_step(name, params, base, updates, ref_state)
        assert_close(out.model, ref_model)
        assert_close(out.state, ref_new)
        assert out.details["first_round"] is (r == 0)
        json.dumps(out.details)
        assert sum(out.weights.values()) == pytest.approx(1.0)
        # next round: from our model and state (the reference continues from our stored state too,
        # so float32-rounding differences cannot accumulate between the two)
        base, state, ref_state = out.model, out.state, out.state
        _, updates = make_round(6, seed=10 + r, base=base)


def test_fedavgm_without_momentum_is_fedavg_on_deltas():
    base, updates = make_round(5, seed=2)
    out = get_strategy("fedavgm", {"server_lr": 1.0, "momentum": 0.0}).step(base, updates).model
    assert_close(out, FedAvg().aggregate(base, updates), tol=1e-6)


def test_fedadam_first_step_is_about_server_lr_in_each_coordinate():
    # with m = (1 - b1) D and v = b2 tau^2 + (1 - b2) D^2, |step| ~ eta (1 - b1) / sqrt(1 - b2) = eta
    base, updates = make_round(4, seed=3)
    eta = 0.01
    out = get_strategy("fedadam", {"server_lr": eta}).step(base, updates).model
    for k in NAMES:
        step = np.abs(out[k].astype(np.float64) - base[k].astype(np.float64))
        assert np.all(step < 1.01 * eta) and np.median(step) > 0.5 * eta


@pytest.mark.parametrize("name", OPTIMISERS)
def test_any_input_order_gives_identical_model_and_state_bytes(name):
    base, updates = make_round(8, seed=4)
    s = get_strategy(name)
    first = s.step(base, updates)
    second = s.step(first.model, make_round(8, seed=5, base=first.model)[1], first.state)
    rng = random.Random(3)
    for _ in range(4):
        shuffled = updates[:]
        rng.shuffle(shuffled)
        again = get_strategy(name, s.params).step(base, shuffled)
        assert encode_tensors(again.model) == encode_tensors(first.model)
        assert encode_tensors(again.state) == encode_tensors(first.state)
        assert again.details == first.details
    # the state survives its canonical encoding unchanged (it is stored as a blob)
    from fedchain.codec import decode_tensors

    decoded = decode_tensors(encode_tensors(first.state))
    third = s.step(first.model, make_round(8, seed=5, base=first.model)[1], decoded)
    assert encode_tensors(third.model) == encode_tensors(second.model)


@pytest.mark.parametrize("name", OPTIMISERS)
def test_state_that_does_not_fit_the_model_is_refused(name):
    base, updates = make_round(3, seed=6)
    good = get_strategy(name).step(base, updates).state
    missing = {k: v for k, v in good.items() if k != "m.out"}
    with pytest.raises(AggregationError, match=rf"{name}: the server state does not match the model; missing \['m.out'\]"):
        get_strategy(name).step(base, updates, missing)
    extra = dict(good, **{"m.nope": np.zeros(1, np.float32)})
    with pytest.raises(AggregationError, match="unexpected"):
        get_strategy(name).step(base, updates, extra)
    wrong = dict(good, **{"m.out": np.zeros((5, 2), np.float32)})
    with pytest.raises(AggregationError, match="m.out has shape"):
        get_strategy(name).step(base, updates, wrong)


def test_flags_defaults_and_state_names():
    for name in OPTIMISERS:
        cls = STRATEGIES[name]
        assert issubclass(cls, ServerOptimizer) and cls.stateful and not cls.robust
    assert get_strategy("fedadam").params == {"beta1": 0.9, "beta2": 0.99, "server_lr": 0.01, "tau": 0.001}
    assert get_strategy("fedyogi").params == {"beta1": 0.9, "beta2": 0.99, "server_lr": 0.01, "tau": 0.001}
    assert get_strategy("fedavgm").params == {"momentum": 0.9, "server_lr": 1.0}
    assert param_names("fedavgm") == ["momentum", "server_lr"]
    base, updates = make_round(2, seed=7)
    assert sorted(get_strategy("fedavgm").step(base, updates).state) == [f"m.{k}" for k in NAMES]
    assert sorted(get_strategy("fedyogi").step(base, updates).state) == sorted(
        [f"m.{k}" for k in NAMES] + [f"v.{k}" for k in NAMES])
    assert all(v.dtype == np.float32 for v in get_strategy("fedadam").step(base, updates).state.values())


@pytest.mark.parametrize("name,params,needle", [
    ("fedadam", {"beta1": 1.0}, "strategy fedadam: parameter beta1 must be a number in [0, 1), got 1.0"),
    ("fedyogi", {"tau": 0}, "strategy fedyogi: parameter tau must be a number in (0, inf), got 0"),
    ("fedavgm", {"server_lr": -1}, "parameter server_lr must be a number in (0, inf)"),
    ("fedavgm", {"beta1": 0.9}, "strategy fedavgm has no parameter 'beta1'; its parameters: momentum, server_lr"),
    ("fedprox", {"mu": -0.1}, "strategy fedprox: parameter mu must be a number in [0, inf), got -0.1"),
    ("fedprox", {"lr": 1}, "strategy fedprox has no parameter 'lr'; its parameters: mu"),
])
def test_bad_params(name, params, needle):
    with pytest.raises(ConfigError) as exc:
        get_strategy(name, params)
    assert needle in exc.value.message


def test_fedprox_server_step_is_fedavg_and_mu_is_committed():
    base, updates = make_round(5, seed=8)
    s = get_strategy("fedprox", {"mu": 0.1})
    assert s.config() == {"name": "fedprox", "params": {"mu": 0.1}}
    assert get_strategy("fedprox").params == {"mu": 0.01}
    r = s.step(base, updates)
    assert encode_tensors(r.model) == encode_tensors(FedAvg().aggregate(base, updates))
    assert r.weights == FedAvg().weights(updates) and not s.robust and not s.stateful
