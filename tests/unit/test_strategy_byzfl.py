"""Cross-check of the robust rules against an independent implementation: the byzfl library
(EPFL's Byzantine FL toolkit, https://byzfl.epfl.ch, pinned in requirements-nodeps.txt).

byzfl's package ``__init__`` also imports its benchmark (torchvision, seaborn), which fedchain
does not need; its aggregators need only numpy, scipy and torch. So the test loads
``byzfl.aggregators`` under an empty ``byzfl`` package object instead of running that
``__init__``. Convention differences, handled below:

* byzfl's Krum scores each vector by its n - f - 1 nearest others (Blanchard et al. use
  n - f - 2), so ``byzfl.Krum(f + 1)`` is our ``krum`` with f; likewise ``byzfl.MultiKrum(f + 1)``
  averages n - f - 1 vectors, our ``multi_krum`` with f and m = n - f - 1.
* byzfl's CenteredClipping cannot be given a start point (its type check rejects every ``m``), so
  it starts from zero: our ``start="zero"``.
* byzfl 0.0.11 has no Bulyan: Bulyan is checked against the paper's pseudocode in
  test_strategy_robust.py.

Random inputs from seeded numpy generators, compared with tolerances (byzfl computes in float64
with numpy's own reductions, we in a fixed order).
"""

from __future__ import annotations

import os

import importlib.util
import sys
import types

import numpy as np
import pytest

from fedchain.strategy import ClientUpdate, get_strategy

NAMES = ["a", "b"]
SHAPES = {"a": (4, 5), "b": (7,)}
DIM = 27


def _load_byzfl_aggregators():
    spec = importlib.util.find_spec("byzfl")
    if spec is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("byzfl is not installed (pip install --no-deps -r requirements-nodeps.txt)")  # CI installs and compiles it
    if "byzfl" not in sys.modules:
        pkg = types.ModuleType("byzfl")
        pkg.__path__ = list(spec.submodule_search_locations or [])
        sys.modules["byzfl"] = pkg
    import byzfl.aggregators as agg  # noqa: PLC0415

    return agg


@pytest.fixture(scope="module")
def byz():
    return _load_byzfl_aggregators()


def make(n: int, seed: int, hostile: int = 0):
    """(base, updates, deltas matrix in node order) with exactly float32-representable deltas."""
    rng = np.random.default_rng(seed)
    base = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    updates, rows = [], []
    for i in range(n):
        w = {}
        for k, s in SHAPES.items():
            d = rng.standard_normal(s) * (1 + i % 3)
            if i >= n - hostile:
                d = d * 50 - 20
            w[k] = (base[k].astype(np.float64) + d).astype(np.float32)
        updates.append(ClientUpdate(f"0x{i:040x}", w, int(rng.integers(1, 100))))
        rows.append(np.concatenate([(w[k].astype(np.float64) - base[k].astype(np.float64)).ravel() for k in NAMES]))
    return base, updates, np.array(rows)


def delta_of(base, model):
    return np.concatenate([(model[k].astype(np.float64) - base[k].astype(np.float64)).ravel() for k in NAMES])


def assert_close(base, model, expected, tol=1e-5):
    got = delta_of(base, model)
    # our result is float32(base + d); compare d within float32 rounding of base + d
    scale = np.maximum(1.0, np.abs(np.concatenate([base[k].ravel() for k in NAMES])) + np.abs(expected))
    np.testing.assert_array_less(np.abs(got - expected), tol * scale)


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [3, 6, 11])
def test_median_agrees_with_byzfl(byz, seed, n):
    base, updates, x = make(n, seed, hostile=n // 4)
    ours = get_strategy("median").step(base, updates).model
    assert_close(base, ours, byz.Median()(x.copy()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,beta", [(10, 0.2), (11, 0.1), (8, 0.25), (9, 0.34)])
def test_trimmed_mean_agrees_with_byzfl(byz, seed, n, beta):
    base, updates, x = make(n, seed, hostile=2)
    s = get_strategy("trimmed_mean", {"beta": beta})
    r = s.step(base, updates)
    k = r.details["trimmed_per_side"]
    assert k == int(beta * n + 1e-9)
    assert_close(base, r.model, byz.TrMean(f=k)(x.copy()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,f", [(5, 1), (9, 2), (11, 3), (7, 0)])
def test_krum_agrees_with_byzfl(byz, seed, n, f):
    base, updates, x = make(n, seed, hostile=f)
    ours = get_strategy("krum", {"f": f}).step(base, updates)
    expected = byz.Krum(f=f + 1)(x.copy())
    assert_close(base, ours.model, expected, tol=1e-6)
    picked = [i for i in range(n) if np.array_equal(x[i], expected)]
    assert ours.details["selected"] == [updates[picked[0]].node]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,f", [(6, 1), (9, 2), (12, 3)])
def test_multi_krum_agrees_with_byzfl(byz, seed, n, f):
    base, updates, x = make(n, seed, hostile=f)
    ours = get_strategy("multi_krum", {"f": f, "m": n - f - 1}).step(base, updates).model
    assert_close(base, ours, byz.MultiKrum(f=f + 1)(x.copy()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tau,iterations", [(1.0, 1), (3.0, 3), (0.5, 10), (1000.0, 2)])
def test_centered_clipping_agrees_with_byzfl(byz, seed, tau, iterations):
    base, updates, x = make(9, seed, hostile=2)
    params = {"tau": tau, "iterations": iterations, "start": "zero"}
    ours = get_strategy("centered_clip", params).step(base, updates).model
    expected = byz.CenteredClipping(L=iterations, tau=float(tau))(x.copy())
    assert_close(base, ours, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("c", [0.5, 3.0, 100.0])
def test_clip_pre_aggregator_agrees_with_byzfl(byz, seed, c):
    base, updates, x = make(7, seed, hostile=1)
    clipped = byz.Clipping(c=float(c))(x.copy())
    ours = get_strategy("trimmed_mean", {"beta": 0.0, "pre": [{"name": "clip", "c": c}]}).step(base, updates).model
    assert_close(base, ours, clipped.mean(axis=0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,f,rule", [(7, 2, "median"), (10, 3, "trimmed_mean"), (9, 2, "krum")])
def test_nearest_neighbour_mixing_then_a_rule_agrees_with_byzfl(byz, seed, n, f, rule):
    import byzfl.aggregators.preaggregators as pre  # noqa: PLC0415

    base, updates, x = make(n, seed, hostile=f)
    params = {"pre": [{"name": "nnm", "f": f}]}
    if rule == "trimmed_mean":
        params["beta"] = f / n
    if rule == "krum":
        params["f"] = f
    ours = get_strategy(rule, params).step(base, updates)
    mixed = pre.NNM(f=f)(x.copy())
    expected = {"median": lambda: byz.Median()(mixed), "krum": lambda: byz.Krum(f=f + 1)(mixed),
                "trimmed_mean": lambda: byz.TrMean(f=int(f / n * n + 1e-9))(mixed)}[rule]()
    assert_close(base, ours.model, expected, tol=1e-5)
    assert ours.details["pre"][0]["name"] == "nnm"
