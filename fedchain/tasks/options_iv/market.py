"""The synthetic crypto options market behind ``options-iv``: market days, venues, quotes.

Ground truth. Each market day has its own Heston parameters, drawn around crypto levels: ATM vol
40-100%, a long-run vol above or below it (term structure in contango or backwardation), fast mean
reversion, high vol of vol and a spot-vol correlation of either sign (put or call skew). Option
prices come from :mod:`.heston` and are turned into Black-Scholes implied vols.

Observable market state. What every participant sees about a day, like the public indices crypto
desks follow: the 30-day ATM implied vol (a DVOL-like index), the 30-day realised vol of the
underlying (a noisy read of the current variance), the ATM term spread (180d - 7d), and the 30-day
risk reversal and butterfly at one standard deviation of moneyness. The model learns the whole
surface as a function of (log-moneyness, time to expiry, state).

Venues. Each node is a venue that quotes only part of the (moneyness, tenor) plane, with its own
quote count and quote noise (half the bid-ask, in vol points), over the same training days. Shard
``i`` gets venue profile ``i % len(VENUES)`` and its own random stream, so shard ``i``'s data does
not depend on the number of shards. Held-out days (never used for training) carry a fixed grid
covering the whole surface, without noise.

Everything is a pure function of the seed (numpy ``Generator`` streams keyed by
:func:`~fedchain.tasks.base.derive_seed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedchain.tasks.base import derive_seed
from fedchain.tasks.options_iv.heston import heston_otm, implied_vol

DAYS_PER_YEAR = 365.0
#: Feature columns (the model input, in order) and the target column; CSV files use these names.
FEATURES = ("log_moneyness", "expiry_years", "atm_vol_30d", "realised_vol_30d", "term_spread",
            "risk_reversal", "butterfly")
TARGET = "iv"
STATE = FEATURES[2:]

#: The whole surface: standardised moneyness z = k / (atm_vol_30d sqrt(T)) and tenor in days.
Z_RANGE = (-2.5, 2.5)
TENOR_RANGE = (1.0, 365.0)

#: Held-out grid tenors (days) and standardised moneyness.
VAL_TENORS = (2.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 270.0, 365.0)
VAL_Z = tuple(np.round(np.linspace(-2.5, 2.5, 11), 6))


@dataclass(frozen=True)
class Venue:
    """One venue's slice of the market."""

    name: str
    tenor_days: tuple[float, float]  # listed expiries it quotes
    z: tuple[float, float]           # standardised-moneyness band
    abs_z: bool                      # band applies to |z| (both wings)
    quotes: int                      # quotes over the training days
    noise_vol: float                 # quote noise, vol points (std)


VENUES: tuple[Venue, ...] = (
    Venue("short-dated ATM", (1.0, 30.0), (-1.2, 1.2), False, 3000, 0.3),
    Venue("long-dated", (45.0, 365.0), (-1.5, 1.5), False, 2500, 0.6),
    Venue("wings", (2.0, 365.0), (1.2, 2.5), True, 1500, 1.5),
    Venue("mid-tenor puts", (14.0, 120.0), (-2.5, 0.3), False, 2500, 0.5),
    Venue("retail calls", (2.0, 90.0), (0.0, 2.5), False, 1500, 1.0),
)


def venue_for(shard: int) -> Venue:
    """The venue profile shard ``shard`` plays (profiles cycle for more than five shards)."""
    base = VENUES[shard % len(VENUES)]
    if shard < len(VENUES):
        return base
    return Venue(f"{base.name} #{shard // len(VENUES) + 1}", base.tenor_days, base.z, base.abs_z,
                 base.quotes, base.noise_vol)


# --- market days ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Days:
    """Market days of one split: Heston parameters (n, 5), listed expiries, observable state (n, 5)."""

    heston: np.ndarray   # columns v0, kappa, theta, sigma, rho
    expiries: tuple[np.ndarray, ...]  # per day: listed tenors in days
    state: np.ndarray    # columns as STATE

    def __len__(self) -> int:
        return len(self.heston)


def _draw_day(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    atm = rng.uniform(0.40, 1.00)
    long_vol = float(np.clip(atm * np.exp(rng.normal(0.0, 0.25)), 0.35, 1.10))
    kappa = float(np.exp(rng.uniform(np.log(1.5), np.log(3.0))))
    sigma = rng.uniform(0.8, 1.6)
    rho = rng.uniform(-0.65, 0.45)
    heston = np.array([atm * atm, kappa, long_vol * long_vol, sigma, rho])
    # listed expiries: dailies, Friday weeklies, monthlies and quarterlies, shifted by the weekday
    o = rng.integers(0, 7)
    m = rng.integers(0, 28)
    q = rng.integers(0, 91)
    expiries = np.array([1, 2, 3, 4 + o, 11 + o, 18 + o, 25 + o, 32 + m, 60 + m, 91 + q, 182 + q, 273 + q])
    expiries = np.unique(np.clip(expiries, TENOR_RANGE[0], TENOR_RANGE[1])).astype(float)
    rv_noise = float(np.exp(rng.normal(0.0, 0.12)))
    return heston, expiries, rv_noise


def _iv(k, tenor_days, heston_rows):
    T = np.asarray(tenor_days, dtype=float) / DAYS_PER_YEAR
    p = heston_otm(k, T, *np.asarray(heston_rows, dtype=float).T)
    return implied_vol(p, k, T)


@lru_cache(maxsize=32)
def market_days(seed: int, split: str, n: int) -> Days:
    """``n`` market days of ``split`` ("train" or "val"); cached per process."""
    if n < 1:
        raise ValueError("need at least one market day")
    heston, expiries, rv_noise = [], [], []
    for d in range(n):
        rng = np.random.default_rng(derive_seed(seed, "options-iv", "day", split, d))
        h, e, r = _draw_day(rng)
        heston.append(h)
        expiries.append(e)
        rv_noise.append(r)
    H = np.stack(heston)
    # observable state from the day's surface: ATM at 7/30/180 days, +-1 sd at 30 days
    atm30 = _iv(np.zeros(n), np.full(n, 30.0), H)
    sd = atm30 * np.sqrt(30.0 / DAYS_PER_YEAR)
    rows = np.concatenate([H, H, H, H])
    ks = np.concatenate([np.zeros(n), np.zeros(n), sd, -sd])
    ts = np.concatenate([np.full(n, 7.0), np.full(n, 180.0), np.full(n, 30.0), np.full(n, 30.0)])
    a7, a180, up, down = _iv(ks, ts, rows).reshape(4, n)
    realised = np.sqrt(H[:, 0]) * np.asarray(rv_noise)
    state = np.stack([atm30, realised, a180 - a7, up - down, 0.5 * (up + down) - atm30], axis=1)
    for arr in (H, state):
        arr.setflags(write=False)
    return Days(H, tuple(expiries), state)


# --- quotes -----------------------------------------------------------------------------------
def features(k: np.ndarray, tenor_days: np.ndarray, state_rows: np.ndarray) -> np.ndarray:
    """The model input (n, 7), float64, in the order of FEATURES."""
    return np.column_stack([k, np.asarray(tenor_days) / DAYS_PER_YEAR, state_rows])


def venue_quotes(seed: int, shard: int, n_days: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Quotes of venue ``shard`` over the training days: features, noisy iv, true iv, day, z, tenor."""
    venue = venue_for(shard)
    days = market_days(seed, "train", n_days)
    rng = np.random.default_rng(derive_seed(seed, "options-iv", "venue", shard))
    n = max(1, int(round(venue.quotes * scale)))
    lo_t, hi_t = venue.tenor_days
    listed = [e[(e >= lo_t) & (e <= hi_t)] for e in days.expiries]
    usable = np.array([len(e) > 0 for e in listed])
    if not usable.any():  # pragma: no cover - every day lists expiries in every venue band
        raise ValueError(f"venue {venue.name!r} has no listed expiries")
    day_ids = np.flatnonzero(usable)
    day = day_ids[rng.integers(0, len(day_ids), n)]
    pick = rng.random(n)
    tenor = np.array([listed[d][int(p * len(listed[d]))] for d, p in zip(day, pick)])
    z = rng.uniform(venue.z[0], venue.z[1], n)
    if venue.abs_z:
        z = z * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    state = days.state[day]
    k = z * state[:, 0] * np.sqrt(tenor / DAYS_PER_YEAR)
    iv_true = _iv(k, tenor, days.heston[day])
    iv = iv_true + rng.normal(0.0, venue.noise_vol / 100.0, n)
    return {"x": features(k, tenor, state), "iv": iv, "iv_true": iv_true, "day": day, "z": z, "tenor": tenor}


@lru_cache(maxsize=8)
def validation_grid(seed: int, n_days: int) -> dict[str, np.ndarray]:
    """Held-out days x VAL_TENORS x VAL_Z, noise-free: features, iv, day, z, tenor."""
    days = market_days(seed, "val", n_days)
    d, t, z = np.meshgrid(np.arange(n_days), np.asarray(VAL_TENORS), np.asarray(VAL_Z), indexing="ij")
    d, t, z = d.ravel(), t.ravel(), z.ravel()
    state = days.state[d]
    k = z * state[:, 0] * np.sqrt(t / DAYS_PER_YEAR)
    iv = _iv(k, t, days.heston[d])
    out = {"x": features(k, t, state), "iv": iv, "day": d, "z": z, "tenor": t}
    for arr in out.values():
        arr.setflags(write=False)
    return out


def true_iv(seed: int, split: str, n_days: int, day: int, k: np.ndarray, tenor_days: np.ndarray) -> np.ndarray:
    """The true implied vol of one day at arbitrary points (for plots and arbitrage checks)."""
    days = market_days(seed, split, n_days)
    k = np.asarray(k, dtype=float)
    rows = np.broadcast_to(days.heston[day], k.shape + (5,)).reshape(-1, 5)
    return _iv(k.ravel(), np.broadcast_to(tenor_days, k.shape).ravel(), rows).reshape(k.shape)
