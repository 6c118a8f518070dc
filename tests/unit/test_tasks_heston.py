"""The vectorised Heston pricer against QuantLib, and the implied-vol inversion."""

from __future__ import annotations

import numpy as np
import pytest

ql = pytest.importorskip("QuantLib")

from fedchain.tasks.options_iv.heston import (  # noqa: E402
    black_call,
    black_otm,
    heston_otm,
    heston_price,
    implied_vol,
)

TODAY = ql.Date(2, 1, 2024)

# (v0, kappa, theta, sigma, rho): crypto-like days, both skew signs, steep and inverted term structures,
# plus a harsh one (vol of vol 2.5, rho -0.9).
PARAMS = [
    (0.36, 2.0, 0.49, 1.2, -0.4),
    (0.81, 3.0, 0.30, 1.6, 0.35),
    (0.16, 1.0, 0.64, 0.8, 0.1),
    (1.00, 5.0, 0.50, 2.5, -0.9),
]
DAYS = [1, 7, 30, 91, 365, 730]
MONEYNESS_SD = [-3.0, -1.5, -0.5, 0.0, 0.5, 1.5, 3.0]  # strikes in standard deviations of ln(K/F)


def ql_heston(strike: float, days: int, *, spot: float, rate: float, div: float, params, call: bool) -> float:
    """QuantLib's AnalyticHestonEngine with adaptive Gauss-Lobatto at 1e-13 relative tolerance."""
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    r = ql.YieldTermStructureHandle(ql.FlatForward(TODAY, rate, dc))
    q = ql.YieldTermStructureHandle(ql.FlatForward(TODAY, div, dc))
    v0, kappa, theta, sigma, rho = params
    process = ql.HestonProcess(r, q, ql.QuoteHandle(ql.SimpleQuote(spot)), v0, kappa, theta, sigma, rho)
    engine = ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-13, 1_000_000)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, strike)
    option = ql.VanillaOption(payoff, ql.EuropeanExercise(TODAY + days))
    option.setPricingEngine(engine)
    return option.NPV()


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("rate,div", [(0.0, 0.0), (0.05, 0.02)])
def test_heston_matches_quantlib_to_1e6(params, rate, div):
    worst = 0.0
    for days in DAYS:
        T = days / 365.0
        fwd = np.exp((rate - div) * T)
        for sd in MONEYNESS_SD:
            strike = fwd * np.exp(sd * np.sqrt(params[0] * T))
            for call in (True, False):
                ref = ql_heston(strike, days, spot=1.0, rate=rate, div=div, params=params, call=call)
                mine = float(heston_price(strike, T, spot=1.0, rate=rate, div=div, v0=params[0], kappa=params[1],
                                          theta=params[2], sigma=params[3], rho=params[4], call=call))
                worst = max(worst, abs(mine - ref))
                assert abs(mine - ref) < 1e-6, (days, sd, call, mine, ref)
    assert worst < 1e-8  # in practice the two agree far better than the 1e-6 requirement


def test_heston_in_btc_units_matches_quantlib():
    """A BTC-sized spot: price per coin over spot agrees to 1e-6 (prices quoted in BTC)."""
    spot, params = 65_000.0, PARAMS[1]
    for days in (3, 60, 365):
        for strike in (40_000.0, 65_000.0, 100_000.0):
            ref = ql_heston(strike, days, spot=spot, rate=0.0, div=0.0, params=params, call=strike >= spot)
            mine = float(heston_price(strike, days / 365.0, spot=spot, rate=0.0, div=0.0, v0=params[0],
                                      kappa=params[1], theta=params[2], sigma=params[3], rho=params[4],
                                      call=strike >= spot))
            assert abs(mine - ref) / spot < 1e-6


def test_vectorised_pricing_equals_one_by_one():
    rng = np.random.default_rng(3)
    k = rng.uniform(-0.5, 0.5, 40)
    t = rng.choice([7 / 365, 30 / 365, 0.5], 40)
    p = np.array(PARAMS)[rng.integers(0, len(PARAMS), 40)]
    together = heston_otm(k, t, *p.T)
    alone = np.array([heston_otm(k[i], t[i], *p[i]) for i in range(40)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-14)


def test_implied_vol_round_trip():
    rng = np.random.default_rng(7)
    sigma = rng.uniform(0.2, 2.0, 500)
    T = rng.uniform(1 / 365, 2.0, 500)
    k = rng.uniform(-2.5, 2.5, 500) * sigma * np.sqrt(T)
    price = black_otm(k, sigma * np.sqrt(T))
    back = implied_vol(price, k, T)
    np.testing.assert_allclose(back, sigma, rtol=1e-9, atol=0)


def test_implied_vol_matches_quantlib_inversion():
    for sigma, days, k in [(0.5, 7, -0.1), (0.9, 90, 0.3), (0.4, 365, -0.6), (1.2, 2, 0.05)]:
        T = days / 365.0
        price = float(black_otm(k, sigma * np.sqrt(T)))
        is_call = k >= 0
        std = ql.blackFormulaImpliedStdDev(ql.Option.Call if is_call else ql.Option.Put,
                                           float(np.exp(k)), 1.0, price, 1.0, 0.0, sigma * np.sqrt(T) * 1.1, 1e-14, 200)
        assert float(implied_vol(price, k, T)) == pytest.approx(std / np.sqrt(T), rel=1e-8)


def test_heston_implied_vols_agree_with_quantlib():
    """End to end: our Heston price -> our IV equals QuantLib price -> QuantLib IV."""
    params, days = PARAMS[0], 30
    T = days / 365.0
    for sd in (-2.0, 0.0, 2.0):
        k = sd * np.sqrt(params[0] * T)
        ref_price = ql_heston(float(np.exp(k)), days, spot=1.0, rate=0.0, div=0.0, params=params, call=k >= 0)
        ref_iv = ql.blackFormulaImpliedStdDev(ql.Option.Call if k >= 0 else ql.Option.Put, float(np.exp(k)), 1.0,
                                              ref_price, 1.0, 0.0, 0.6 * np.sqrt(T), 1e-14, 200) / np.sqrt(T)
        mine = float(implied_vol(heston_otm(k, T, *params), k, T))
        assert mine == pytest.approx(ref_iv, abs=1e-7)


def test_implied_vol_rejects_prices_outside_bounds():
    assert np.isnan(implied_vol(0.0, 0.1, 0.5))
    assert np.isnan(implied_vol(1.5, 0.1, 0.5))
    assert np.isnan(implied_vol(np.nan, 0.1, 0.5))


def test_black_call_put_symmetry():
    k, s = 0.3, 0.4
    assert float(black_otm(-k, s)) == pytest.approx(np.exp(-k) * float(black_call(k, s)), rel=1e-12)
