"""Properties every aggregation rule must have, checked with hypothesis on random updates:

- the result does not depend on the order the updates arrive in (bit for bit: rules sort by node);
- n copies of one update aggregate to that update (up to float32 rounding of base + delta);
- the coordinate-wise rules (median, trimmed mean) stay inside the coordinate-wise hull of the
  inputs, and the selection rules (Krum) return one of the inputs;
- with f hostile updates far away, every robust rule (with or without nearest-neighbour mixing)
  stays within the honest inputs' coordinate range, where FedAvg does not.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.strategy import ClientUpdate, get_strategy

SHAPES = {"b": (3,), "w": (2, 3)}
RULES = [("fedavg", {}), ("median", {}), ("trimmed_mean", {"beta": 0.2}), ("krum", {"f": 1}),
         ("multi_krum", {"f": 1}), ("centered_clip", {}), ("median", {"pre": [{"name": "nnm", "f": 1}]}),
         ("krum", {"f": 1, "pre": [{"name": "nnm", "f": 1}]})]
ROBUST = [r for r in RULES if r[0] not in ("fedavg", "centered_clip")]


def build(seed: int, n: int, hostile: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    base = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    ups = []
    for i in range(n):
        w = {k: (base[k] + rng.standard_normal(s).astype(np.float32) * np.float32(scale)) for k, s in SHAPES.items()}
        if i >= n - hostile:
            w = {k: v + np.float32(1e4) for k, v in w.items()}
        ups.append(ClientUpdate(f"0x{(i + 1) * 7919:040x}", w, int(rng.integers(1, 50))))
    return base, ups


seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=st.integers(5, 9), perm_seed=seeds)
def test_every_rule_ignores_the_order_updates_arrive_in(seed, n, perm_seed):
    base, ups = build(seed, n)
    order = np.random.default_rng(perm_seed).permutation(n)
    for name, params in RULES:
        a = get_strategy(name, params).step(base, ups).model
        b = get_strategy(name, params).step(base, [ups[i] for i in order]).model
        assert all(np.array_equal(a[k], b[k]) for k in a), name


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(5, 8))
def test_copies_of_one_update_aggregate_to_that_update(seed, n):
    base, ups = build(seed, 1)
    copies = [ClientUpdate(f"0x{(i + 1) * 31:040x}", ups[0].weights, 10) for i in range(n)]
    for name, params in RULES:
        out = get_strategy(name, params).step(base, copies).model
        for k in base:
            np.testing.assert_allclose(out[k], ups[0].weights[k], rtol=0, atol=1e-5, err_msg=name)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(5, 9))
def test_coordinatewise_rules_stay_in_the_hull_and_krum_returns_an_input(seed, n):
    base, ups = build(seed, n)
    stack = {k: np.stack([u.weights[k] for u in ups]) for k in base}
    for name, params in (("median", {}), ("trimmed_mean", {"beta": 0.2})):
        out = get_strategy(name, params).step(base, ups).model
        for k in base:
            assert np.all(out[k] >= stack[k].min(axis=0) - 1e-6) and np.all(out[k] <= stack[k].max(axis=0) + 1e-6)
    out = get_strategy("krum", {"f": 1}).step(base, ups).model
    assert any(all(np.allclose(out[k], u.weights[k], atol=1e-6) for k in base) for u in ups)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, n=st.integers(7, 10))
def test_robust_rules_resist_far_hostile_updates_that_move_fedavg(seed, n):
    f = 1
    base, ups = build(seed, n, hostile=f)
    honest = {k: np.stack([u.weights[k] for u in ups[: n - f]]) for k in base}
    for name, params in ROBUST:
        out = get_strategy(name, params).step(base, ups).model
        for k in base:
            assert np.all(out[k] <= honest[k].max(axis=0) + 1e-4), (name, params)
    avg = get_strategy("fedavg").step(base, ups).model
    assert any(np.any(avg[k] > honest[k].max(axis=0) + 1.0) for k in base)
