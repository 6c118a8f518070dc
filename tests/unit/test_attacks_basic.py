"""Attacks on small inputs: sign flip, scaling, noise, inflated samples, data poisoning; the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedchain.attacks import (ATTACKS, AttackContext, apply_delta, delta_of, flatten, get_attack, parse_params,
                              unflatten)
from fedchain.errors import ConfigError
from fedchain.tasks.base import NodeData


def ctx(seed: int = 0, honest=None, n: int = 10, f: int = 2) -> AttackContext:
    return AttackContext(n=n, f=f, rng=np.random.default_rng(seed), honest=honest)


def test_registry_lists_every_attack_and_names_them_on_error():
    assert set(ATTACKS) == {"sign_flip", "scaling", "noise", "data_poison", "inflate", "alie", "ipm", "min_max",
                            "min_sum"}
    for name, cls in ATTACKS.items():
        assert cls.name == name and cls.paper  # each cites its paper
        assert get_attack(name).params == {k: p.default for k, p in cls.PARAMS.items()}
    with pytest.raises(ConfigError, match="known: alie"):
        get_attack("nope")
    assert get_attack("sign-flip").name == "sign_flip"  # dashes accepted


def test_params_are_validated():
    with pytest.raises(ConfigError, match="no parameter"):
        get_attack("scaling", {"kk": 2})
    with pytest.raises(ConfigError, match="must be a number"):
        get_attack("scaling", {"k": "big"})
    with pytest.raises(ConfigError, match=">= 0"):
        get_attack("noise", {"sigma": -1})
    with pytest.raises(ConfigError, match="one of"):
        get_attack("noise", {"mode": "swap"})
    with pytest.raises(ConfigError, match="integer"):
        get_attack("min_max", {"max_iter": 2.5})
    assert parse_params(["k=10", "mode=add", "pre=[1,2]"]) == {"k": 10, "mode": "add", "pre": [1, 2]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_params(["oops"])


def test_flatten_roundtrip_sorted_by_name():
    arrays = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), dtype=np.float32)}
    v = flatten(arrays)
    assert v.dtype == np.float64 and v.tolist() == [1, 1, 1, 1, 0, 1, 2]
    back = unflatten(v, arrays)
    assert all(back[k].dtype == np.float32 and np.array_equal(back[k], arrays[k]) for k in arrays)
    base = {k: np.zeros_like(a) for k, a in arrays.items()}
    assert np.array_equal(delta_of(arrays, base), v)
    assert np.array_equal(flatten(apply_delta(base, v)), v)
    with pytest.raises(ValueError):
        unflatten(v[:-1], arrays)


def test_sign_flip_and_scaling():
    own = np.array([1.0, -2.0, 0.5])
    assert get_attack("sign_flip").apply(own, ctx()).tolist() == [-1.0, 2.0, -0.5]
    assert get_attack("sign_flip", {"scale": 3}).apply(own, ctx()).tolist() == [-3.0, 6.0, -1.5]
    assert get_attack("scaling").apply(own, ctx()).tolist() == [10.0, -20.0, 5.0]
    assert get_attack("scaling", {"k": -1}).apply(own, ctx()).tolist() == [-1.0, 2.0, -0.5]


def test_gaussian_noise_is_seeded_and_has_the_right_spread():
    own = np.full(20_000, 5.0)
    a = get_attack("noise", {"sigma": 0.5})
    x, y = a.apply(own, ctx(7)), a.apply(own, ctx(7))
    assert np.array_equal(x, y) and not np.array_equal(x, a.apply(own, ctx(8)))
    assert abs(x.mean()) < 0.02 and abs(x.std() - 0.5) < 0.02  # replace: the delta is gone
    added = get_attack("noise", {"sigma": 0.5, "mode": "add"}).apply(own, ctx(7))
    assert np.allclose(added - own, x)


def test_inflate_claims_the_cap():
    a = get_attack("inflate")
    assert a.claim(1500, 1_000_000) == 1_000_000
    assert get_attack("inflate", {"fraction": 0.5}).claim(1500, 1_000_000) == 500_000
    assert get_attack("inflate", {"fraction": 0.0}).claim(1500, 1_000_000) == 1500
    assert get_attack("sign_flip").claim(1500, 1000) == 1000  # honest claim: own count, capped
    assert not a.forges_update and a.apply(np.ones(2), ctx()).tolist() == [1.0, 1.0]


class _Regression:
    name = "reg"


def test_data_poison_regression_targets():
    data = NodeData(torch.zeros(4, 2), torch.tensor([[0.5], [0.6], [0.7], [0.8]]))
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    inv = get_attack("data_poison", {"shift": 0.0}).poison(data, _Regression(), rng())
    assert torch.allclose(inv.y.reshape(-1), torch.tensor([0.8, 0.7, 0.6, 0.5]))
    sh = get_attack("data_poison", {"mode": "shift", "shift": 0.1}).poison(data, _Regression(), rng())
    assert torch.allclose(sh.y, data.y + 0.1)
    half = get_attack("data_poison", {"mode": "scale", "factor": 2.0, "fraction": 0.5}).poison(
        data, _Regression(), rng())
    changed = (half.y != data.y).reshape(-1)
    assert int(changed.sum()) == 2 and torch.allclose(half.y[changed], 2 * data.y[changed])
    again = get_attack("data_poison", {"mode": "scale", "factor": 2.0, "fraction": 0.5}).poison(
        data, _Regression(), rng())
    assert torch.equal(again.y, half.y)  # deterministic given the seed
    assert torch.equal(data.y, torch.tensor([[0.5], [0.6], [0.7], [0.8]]))  # the original is untouched
    assert half.meta["poisoned_rows"] == 2


def test_data_poison_uses_the_tasks_hook():
    class WithHook:
        def poison(self, data, params, rng):
            return NodeData(data.x, data.y * 0 + params["fraction"])

    data = NodeData(torch.zeros(2, 1), torch.ones(2, 1))
    out = get_attack("data_poison", {"fraction": 0.25}).poison(data, WithHook(), np.random.default_rng(0))
    assert torch.equal(out.y, torch.full((2, 1), 0.25))
