"""ALIE, IPM, min-max and min-sum on small inputs: what the papers say they send."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from fedchain.attacks import AttackContext, alie_z, get_attack
from fedchain.attacks.agr_agnostic import gamma_search, pairwise_sq_dists, perturbation
from fedchain.errors import ConfigError


def honest(seed: int = 0, k: int = 8, d: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=1.0, scale=0.5, size=(k, d))


def ctx(h, n=10, f=2) -> AttackContext:
    return AttackContext(n=n, f=f, rng=np.random.default_rng(0), honest=h)


def test_alie_z_max_follows_the_paper():
    # n = 10, f = 2: s = floor(10/2 + 1) - 2 = 4 supporters; z = Phi^-1((10 - 4)/10) = Phi^-1(0.6)
    assert alie_z(10, 2) == pytest.approx(NormalDist().inv_cdf(0.6)) == pytest.approx(0.2533, abs=1e-4)
    # n = 50, f = 24 (the paper's running example): s = 2, z = Phi^-1(48/50) ~ 1.75
    assert alie_z(50, 24) == pytest.approx(NormalDist().inv_cdf(0.96))
    assert alie_z(10, 0) == pytest.approx(NormalDist().inv_cdf(0.4))
    with pytest.raises(ConfigError):
        alie_z(10, 11)


def test_alie_sends_mean_minus_z_std():
    h = honest()
    out = get_attack("alie").apply(np.zeros(30), ctx(h))
    z = alie_z(10, 2)
    assert np.allclose(out, h.mean(axis=0) - z * h.std(axis=0))
    # inside the honest spread coordinate by coordinate
    assert np.all(out >= h.min(axis=0)) and np.all(out <= h.max(axis=0))
    fixed = get_attack("alie", {"z": 1.0}).apply(np.zeros(30), ctx(h))
    assert np.allclose(fixed, h.mean(axis=0) - h.std(axis=0))
    with pytest.raises(ConfigError, match="honest"):
        get_attack("alie").apply(np.zeros(30), ctx(None))


def test_ipm_sends_minus_epsilon_mean_and_the_inner_product_turns_negative():
    h = honest()
    mu = h.mean(axis=0)
    out = get_attack("ipm", {"epsilon": 0.1}).apply(np.zeros(30), ctx(h))
    assert np.allclose(out, -0.1 * mu)
    big = get_attack("ipm", {"epsilon": 10}).apply(np.zeros(30), ctx(h))
    merged = (h.sum(axis=0) + 2 * big) / 10  # the mean of 8 honest and 2 hostile
    assert float(merged @ mu) < 0 < float(mu @ mu)


def test_perturbations():
    h = honest()
    mu, sd = h.mean(axis=0), h.std(axis=0)
    assert np.allclose(perturbation(h, "std"), -sd)
    assert np.allclose(perturbation(h, "unit"), -mu / np.linalg.norm(mu))
    assert np.allclose(perturbation(h, "sign"), -np.sign(mu))


def test_gamma_search_finds_the_threshold_and_is_bounded():
    # accept(g) iff g <= 3.7: the search converges to 3.7 within tau
    g = gamma_search(lambda x: x <= 3.7, 10.0, 1e-6, 200)
    assert 3.7 - 1e-5 <= g <= 3.7
    assert gamma_search(lambda x: False, 10.0, 1e-6, 200) == 0.0
    assert gamma_search(lambda x: True, 10.0, 1e-6, 200) == pytest.approx(20.0, abs=1e-4)  # up to 2 gamma_init
    calls = []
    gamma_search(lambda x: calls.append(x) or x <= 3.7, 10.0, 0.0, 5)
    assert len(calls) == 5  # max_iter bounds the search


@pytest.mark.parametrize("kind", ["std", "unit", "sign"])
def test_min_max_sits_on_the_oracles_boundary(kind):
    h = honest(1)
    a = get_attack("min_max", {"perturbation": kind})
    out, gamma = a.search(h)
    assert gamma > 0
    assert np.allclose(out, h.mean(axis=0) + gamma * perturbation(h, kind))
    d_hh = pairwise_sq_dists(h, h).max()
    worst = pairwise_sq_dists(out[None, :], h).max()
    assert worst <= d_hh  # accepted...
    further = h.mean(axis=0) + (gamma * 1.001 + 1e-4) * perturbation(h, kind)
    assert pairwise_sq_dists(further[None, :], h).max() > d_hh  # ...and as far as it can go
    assert np.array_equal(a.apply(np.zeros(30), ctx(h)), out)  # deterministic


@pytest.mark.parametrize("kind", ["std", "unit", "sign"])
def test_min_sum_sits_on_the_oracles_boundary(kind):
    h = honest(2)
    out, gamma = get_attack("min_sum", {"perturbation": kind}).search(h)
    assert gamma > 0
    limit = pairwise_sq_dists(h, h).sum(axis=1).max()
    assert pairwise_sq_dists(out[None, :], h).sum() <= limit
    further = h.mean(axis=0) + (gamma * 1.001 + 1e-4) * perturbation(h, kind)
    assert pairwise_sq_dists(further[None, :], h).sum() > limit


def test_min_sum_is_more_cautious_than_min_max():
    h = honest(3)
    assert get_attack("min_sum").search(h)[1] <= get_attack("min_max").search(h)[1]
    assert math.isfinite(get_attack("min_max").search(h)[1])
