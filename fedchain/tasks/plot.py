"""The ``fedchain baseline --plot`` picture: one held-out day's true surface next to the federated
and local-only predictions (``options-iv`` only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fedchain.errors import ConfigError
from fedchain.tasks.base import Task

SMILE_TENORS = (7.0, 30.0, 180.0)


def check_plottable(task: Task) -> None:
    """ConfigError unless ``--plot`` can draw this task (before any training is spent)."""
    from fedchain.tasks.options_iv import OptionsIVTask

    if not isinstance(task, OptionsIVTask):
        raise ConfigError(f"--plot draws volatility surfaces and needs the options-iv task, not {task.name!r}",
                          hint="drop --plot, or run --task options-iv")


def plot_baseline(
    task: Task,
    path: Path,
    *,
    seed: int,
    params: dict,
    models: dict[str, torch.nn.Module],
    local_models: Sequence[torch.nn.Module],
    local_names: Sequence[str],
    local_rmse: Sequence[float],
    day: int | None = None,
) -> Path:
    """Top row: true / federated / median local-only implied-vol surfaces as heat maps over
    (standardised moneyness, tenor), with the local venue's quoting region outlined. Middle row:
    centralised / federated / local-only errors. Bottom row: smiles at 7, 30 and 180 days: truth,
    federated, centralised and every local-only model.

    ``day`` defaults to the held-out day whose true surface spans the widest range of vols (the
    most shape to get right); the local-only panel shows the venue with the median held-out rmse.
    """
    from fedchain.tasks.options_iv import market

    check_plottable(task)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    p = task.resolve_params(params)
    n_days = int(p["val_days"])
    days = market.market_days(int(seed), "val", n_days)
    if day is None:
        grid = market.validation_grid(int(seed), n_days)
        spans = [np.ptp(grid["iv"][grid["day"] == d]) for d in range(n_days)]
        day = int(np.argmax(spans))
    day = int(day) % n_days
    state = days.state[day]
    atm = float(state[0])

    z = np.linspace(market.Z_RANGE[0], market.Z_RANGE[1], 51)
    tenors = np.geomspace(2.0, 365.0, 40)
    zz, tt = np.meshgrid(z, tenors)
    kk = zz * atm * np.sqrt(tt / market.DAYS_PER_YEAR)
    truth = market.true_iv(int(seed), "val", n_days, day, kk, tt) * 100.0

    def predict(model: torch.nn.Module, k: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = market.features(k.ravel(), t.ravel(), np.repeat(state[None, :], k.size, axis=0))
        return task.predict(model, torch.tensor(x, dtype=torch.float32)).numpy().reshape(k.shape) * 100.0

    med = int(np.argsort(np.asarray(local_rmse))[len(local_rmse) // 2])
    fed = predict(models["federated"], kk, tt)
    loc = predict(local_models[med], kk, tt)
    venue = market.venue_for(med)

    lo, hi = np.nanpercentile(truth, 1), np.nanpercentile(truth, 99)
    pad = 0.15 * (hi - lo) + 1.0
    vmin, vmax = lo - pad, hi + pad
    fig, axes = plt.subplots(3, 3, figsize=(15, 13.5), constrained_layout=True)
    cen = predict(models["centralised"], kk, tt) if "centralised" in models else None
    panels = [
        ("true surface (Heston)", truth),
        (f"federated (rmse {_rmse(fed, truth):.2f} vol pts on this day)", fed),
        (f"local-only: {local_names[med]} (rmse {_rmse(loc, truth):.2f})", loc),
    ]
    mesh = None
    for ax, (title, values) in zip(axes[0], panels):
        mesh = ax.pcolormesh(z, tenors, values, shading="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        levels = np.arange(np.floor(vmin / 5) * 5, vmax + 5, 5)
        ax.contour(z, tenors, np.clip(values, vmin, vmax), levels=levels, colors="white", linewidths=0.5, alpha=0.6)
        ax.set_title(title, fontsize=10)
    fig.colorbar(mesh, ax=axes[0, :], label="implied vol (%)", shrink=0.9)

    errors = [("centralised - truth", cen), ("federated - truth", fed), (f"local-only {local_names[med]} - truth", loc)]
    lim = max(2.0, float(np.nanpercentile(np.abs(loc - truth), 98)))
    for ax, (title, values) in zip(axes[1], errors):
        if values is None:
            ax.axis("off")
            continue
        mesh = ax.pcolormesh(z, tenors, values - truth, shading="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{title} (vol pts)", fontsize=10)
    fig.colorbar(mesh, ax=axes[1, :], label="prediction error (vol pts)", shrink=0.9)
    for ax in (*axes[0], *axes[1]):
        ax.set_yscale("log")
        ax.set_yticks([2, 7, 30, 90, 365])
        ax.set_yticklabels(["2", "7", "30", "90", "365"])
        ax.set_xlabel("standardised moneyness z = ln(K/F) / (ATM30 sqrt(T))")
        ax.set_ylabel("tenor (days)")
    for ax in (axes[0, 2], axes[1, 2]):
        for lo_z, hi_z in _bands(venue):
            ax.add_patch(plt.Rectangle((lo_z, venue.tenor_days[0]), hi_z - lo_z,
                                       venue.tenor_days[1] - venue.tenor_days[0], fill=False,
                                       edgecolor="black" if ax is axes[1, 2] else "red", linestyle="--",
                                       linewidth=1.5))
    axes[0, 2].plot([], [], color="red", linestyle="--", label="where this venue quotes")
    axes[0, 2].legend(loc="upper right", fontsize=8)

    zs = np.linspace(market.Z_RANGE[0], market.Z_RANGE[1], 101)
    for ax, tenor in zip(axes[2], SMILE_TENORS):
        t = np.full_like(zs, tenor)
        k = zs * atm * np.sqrt(tenor / market.DAYS_PER_YEAR)
        true_s = market.true_iv(int(seed), "val", n_days, day, k, t) * 100.0
        for i, (m, name) in enumerate(zip(local_models, local_names)):
            ax.plot(k, predict(m, k, t), color=plt.cm.tab10(i + 3), linewidth=1.0, alpha=0.8,
                    label=f"local-only: {name}")
        if "centralised" in models:
            ax.plot(k, predict(models["centralised"], k, t), color="tab:green", linestyle=":", linewidth=2.0,
                    label="centralised")
        ax.plot(k, predict(models["federated"], k, t), color="tab:blue", linestyle="--", linewidth=2.2,
                label="federated")
        ax.plot(k, true_s, color="black", linewidth=2.2, label="truth")
        span = true_s.max() - true_s.min()
        ax.set_ylim(true_s.min() - 0.6 * span - 3, true_s.max() + 0.6 * span + 3)
        ax.set_title(f"smile at {tenor:.0f} days", fontsize=10)
        ax.set_xlabel("log-moneyness ln(K/F)")
        ax.set_ylabel("implied vol (%)")
        ax.grid(alpha=0.3)
    axes[2, 0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"options-iv, seed {seed}, held-out day {day}: ATM30 {state[0] * 100:.0f}%, realised {state[1] * 100:.0f}%, "
        f"term spread {state[2] * 100:+.1f}, risk reversal {state[3] * 100:+.1f}, butterfly {state[4] * 100:+.1f} vol pts",
        fontsize=11,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean((a - b) ** 2)))


def _bands(venue) -> list[tuple[float, float]]:
    lo, hi = venue.z
    return [(-hi, -lo), (lo, hi)] if venue.abs_z else [(lo, hi)]
