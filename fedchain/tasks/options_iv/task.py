"""``options-iv``: a shared crypto volatility-surface model, learned across venues that each see
only part of the options market. See :mod:`.market` for the data and ``docs/tasks.md``."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from fedchain.tasks.base import NodeData, Task, check_shard, positive_int_param, regression_metrics, seeded_module
from fedchain.tasks.options_iv import market
from fedchain.tasks.options_iv.heston import black_call
from fedchain.tasks.options_iv.model import SurfaceMLP

VOL_POINTS = 100.0  # metrics are in vol points: 0.01 of implied vol = 1 point
#: Arbitrage checks: 41 moneyness points per held-out tenor; tolerances absorb float32 rounding.
ARB_Z = np.linspace(-2.5, 2.5, 41)
BUTTERFLY_TOL = 1e-6  # slope increments of the normalised call price in strike
CALENDAR_TOL = 1e-6   # total implied variance


class OptionsIVTask(Task):
    """Learn BTC-like implied-vol surfaces (Heston ground truth) from venue quotes."""

    name: ClassVar[str] = "options-iv"
    primary_metric: ClassVar[str] = "rmse"
    feature_columns: ClassVar[tuple[str, ...]] = market.FEATURES
    target_columns: ClassVar[tuple[str, ...]] = (market.TARGET,)

    def default_params(self) -> dict:
        return {"hidden": 64, "depth": 3, "train_days": 120, "val_days": 24, "quotes_scale": 1.0}

    def default_training(self) -> dict:
        return {"epochs": 2, "batch_size": 64, "lr": 0.003}

    # --- model -----------------------------------------------------------------------------------
    def build_model(self, params: dict, seed: int) -> torch.nn.Module:
        p = self.resolve_params(params)
        hidden, depth = _positive_int(p, "hidden"), _positive_int(p, "depth")
        return seeded_module(lambda: SurfaceMLP(hidden, depth), seed)

    # --- data ------------------------------------------------------------------------------------
    def node_data(self, shard: int, num_shards: int, seed: int, params: dict) -> NodeData:
        shard, num_shards = check_shard(shard, num_shards)
        p = self.resolve_params(params)
        x, y = _venue_arrays(int(seed), shard, _positive_int(p, "train_days"), float(p.get("quotes_scale", 1.0)))
        v = market.venue_for(shard)
        meta = {"shard": shard, "num_shards": num_shards, "venue": v.name, "rows": int(len(y)), "seed": int(seed),
                "tenor_days": list(v.tenor_days), "z": list(v.z), "abs_z": v.abs_z, "noise_vol": v.noise_vol}
        return NodeData(torch.tensor(x), torch.tensor(y), meta)

    def validation_data(self, seed: int = 0, params: dict | None = None) -> NodeData:
        """The global held-out set: unseen market days on a grid over the whole surface, noise-free."""
        p = self.resolve_params(params)
        g = market.validation_grid(int(seed), _positive_int(p, "val_days"))
        return NodeData(torch.tensor(g["x"], dtype=torch.float32),
                        torch.tensor(g["iv"], dtype=torch.float32).reshape(-1, 1),
                        {"split": "val", "seed": int(seed), "rows": int(len(g["iv"])), "days": int(p["val_days"])})

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: NodeData | None = None, *, seed: int = 0,
                 params: dict | None = None) -> dict[str, float]:
        """rmse / mae / max_abs_err in vol points; on the held-out set also the arbitrage shares."""
        if data is not None:
            return regression_metrics(self.predict(model, data.x), data.y, scale=VOL_POINTS)
        p = self.resolve_params(params)
        val = self.validation_data(seed, p)
        out = regression_metrics(self.predict(model, val.x), val.y, scale=VOL_POINTS)
        out.update(self.arbitrage(model, seed=seed, params=p))
        return out

    def arbitrage(self, model: torch.nn.Module | None, *, seed: int = 0, params: dict | None = None) -> dict[str, float]:
        """Share of held-out days whose predicted surface has butterfly or calendar arbitrage.

        Butterfly: the normalised call price must be convex and non-increasing in strike along each
        held-out tenor (41 moneyness points). Calendar: total implied variance must not fall with
        tenor at fixed log-moneyness (each tenor's points against the next tenor). ``model=None``
        checks the true surfaces (which are arbitrage-free).
        """
        p = self.resolve_params(params)
        n_days = _positive_int(p, "val_days")
        k, t, t_next, state = _arb_grid(int(seed), n_days)
        if model is None:
            days = market.market_days(int(seed), "val", n_days)
            d = np.broadcast_to(np.arange(n_days)[:, None, None], k.shape)
            rows = days.heston[d.ravel()]
            iv = market._iv(k.ravel(), t.ravel(), rows).reshape(k.shape)
            iv_next = market._iv(k[:, :-1].ravel(), t_next[:, :-1].ravel(),
                                 days.heston[d[:, :-1].ravel()]).reshape(k[:, :-1].shape)
        else:
            feats = market.features(k.ravel(), t.ravel(), np.repeat(state, k.shape[1] * k.shape[2], axis=0))
            feats_next = market.features(k[:, :-1].ravel(), t_next[:, :-1].ravel(),
                                         np.repeat(state, (k.shape[1] - 1) * k.shape[2], axis=0))
            both = torch.tensor(np.concatenate([feats, feats_next]), dtype=torch.float32)
            pred = self.predict(model, both).double().numpy().ravel()
            iv = pred[: k.size].reshape(k.shape)
            iv_next = pred[k.size :].reshape(k[:, :-1].shape)
        return arbitrage_shares(k, t, iv, iv_next, t_next[:, :-1])


# --- helpers ------------------------------------------------------------------------------------
def _positive_int(p: dict, key: str) -> int:
    return positive_int_param(p, key, "options-iv")


@lru_cache(maxsize=64)
def _venue_arrays(seed: int, shard: int, train_days: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    q = market.venue_quotes(seed, shard, train_days, scale)
    x = q["x"].astype(np.float32)
    y = q["iv"].astype(np.float32).reshape(-1, 1)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@lru_cache(maxsize=8)
def _arb_grid(seed: int, n_days: int):
    """Per held-out day: k (days, tenors, z), tenor, the next tenor, and the day's state."""
    days = market.market_days(seed, "val", n_days)
    tenors = np.asarray(market.VAL_TENORS)
    atm = days.state[:, 0]
    k = ARB_Z[None, None, :] * atm[:, None, None] * np.sqrt(tenors[None, :, None] / market.DAYS_PER_YEAR)
    t = np.broadcast_to(tenors[None, :, None], k.shape)
    t_next = np.broadcast_to(np.append(tenors[1:], tenors[-1])[None, :, None], k.shape)
    return k, t, t_next, days.state


def arbitrage_shares(k, tenor_days, iv, iv_next, tenor_next_days) -> dict[str, float]:
    """Shares of surfaces (axis 0) with butterfly / calendar / either violation.

    ``k``, ``tenor_days``, ``iv``: (days, tenors, strikes); ``iv_next`` and ``tenor_next_days``:
    (days, tenors - 1, strikes), the same log-moneyness at the next tenor.
    """
    T = np.asarray(tenor_days) / market.DAYS_PER_YEAR
    iv = np.asarray(iv, dtype=float)
    bad_iv = ~np.isfinite(iv) | (iv <= 0)
    total_vol = np.sqrt(np.maximum(iv, 1e-8) ** 2 * T)
    c = black_call(k, total_vol)
    strike = np.exp(k)
    slope = np.diff(c, axis=-1) / np.diff(strike, axis=-1)
    butterfly = (np.diff(slope, axis=-1) < -BUTTERFLY_TOL).any(axis=(1, 2))
    butterfly |= (slope > BUTTERFLY_TOL).any(axis=(1, 2)) | (slope < -1.0 - BUTTERFLY_TOL).any(axis=(1, 2))
    butterfly |= bad_iv.any(axis=(1, 2))
    w = iv[:, :-1] ** 2 * T[:, :-1]
    w_next = np.asarray(iv_next, dtype=float) ** 2 * (np.asarray(tenor_next_days) / market.DAYS_PER_YEAR)
    calendar = (w_next < w - CALENDAR_TOL).any(axis=(1, 2)) | ~np.isfinite(w_next).all(axis=(1, 2))
    return {
        "arb_share": float(np.mean(butterfly | calendar)),
        "butterfly_share": float(np.mean(butterfly)),
        "calendar_share": float(np.mean(calendar)),
    }
