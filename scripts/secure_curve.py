#!/usr/bin/env python
"""Secure mode's accuracy against epsilon on options-iv (docs/privacy.md, section 10).

One in-process federation per *arm*, all from the same initial model, the same node data
(``task.node_data``) and the same local training seeds (``derive_seed(seed, "fed", r, i)``, as in
``fedchain.tasks.baseline._federate``), so the arms differ only in how a round's updates are merged:

- ``fedavg``: transparent FedAvg (``get_strategy("fedavg")``) over the trained weights, each node
  declaring ``min(len(data), max_samples)`` samples;
- ``secure``: secure mode without DP noise, through the **full** protocol path: every node's
  ``node_masked_update`` (clip to C, weight ``secure_weight(n, max_samples)``, quantise, mask,
  share bundle, blob), every node's ``node_unmask_blob``, ``unmask_round`` over all of them, then
  ``secure_model`` (``fedchain.aggregator.secure_merge``: the aggregator's merge);
- ``skellam z=...``: the same with Skellam noise of multiplier z
  (``SkellamNoise.from_noise_multiplier(z, rounded_l2_bound(C 2^k, d), min_contributors=t - 1)``),
  by default through the full path too; ``--noisy-path shortcut`` replaces masking and unmasking by
  what unmasking provably recovers: the modular sum of every node's quantised, noised input (the
  same functions, the same secrets). The noiseless arm checks in every round that this shortcut
  equals the real unmasked sum to the bit.

Epsilon is the accountant's (``fedchain.privacy.accountant``) at delta = 1e-5 after R rounds with
all N nodes contributing and none assumed colluding.

    python scripts/secure_curve.py                     # N=10, R=30, seed 0
    python scripts/secure_curve.py --seeds 0 1 2       # the table of docs/privacy.md

Each (seed, configuration) is cached under ``--cache`` so a longer run can resume; ``--no-cache``
recomputes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_JSON = REPO / "docs" / "data" / "secure-curve.json"
DEFAULT_PLOT = REPO / "docs" / "img" / "secure-rmse-eps.png"
DEFAULT_CACHE = REPO / ".fedchain" / "secure-curve"
#: Noise multipliers: the small ones are where the noise stops hurting at N = 10 (docs/privacy.md, section 10).
DEFAULT_Z = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
CHAIN_ID = 31337
#: A fixed contract address for the round context (any 20 bytes would do).
CONTRACT = "0x5EC0000000000000000000000000000000C0FFEE"
#: Target: secure mode without noise within 1% of transparent FedAvg's RMSE.
TARGET_GAP = 0.01
VERSION = "fedchain/secure-curve/v1"


# --- identities and secrets -----------------------------------------------------------------------
def node_address(i: int) -> str:
    """Node i's (fixed, checksummed) address; addresses grow with i, so protocol order = shard order."""
    from fedchain.address import to_checksum_address

    return to_checksum_address("0x%040x" % (0x5EC0 << 140 | (i + 1)))


def node_private_key(i: int) -> bytes:
    from fedchain.secure.keys import private_key_from_seed

    return private_key_from_seed(hashlib.sha256(b"%s/x25519/%d" % (VERSION.encode(), i)).digest())


def round_secret(seed: int, round_id: int, node: int) -> bytes:
    """The 32-byte round secret of node ``node`` in round ``round_id`` of the run with ``seed``
    (a real node uses os.urandom(32); here it is derived so that runs are reproducible)."""
    return hashlib.sha256(b"%s/secret/%d/%d/%d" % (VERSION.encode(), seed, round_id, node)).digest()


# --- the merges -----------------------------------------------------------------------------------
def _delta(trained: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: trained[k].astype(np.float64) - base[k].astype(np.float64) for k in sorted(base)}


def shortcut_total(deltas: list[dict[str, np.ndarray]], secrets: list[bytes], weights: list[float], secure: Any) -> dict[str, np.ndarray]:
    """What unmasking recovers: Σ_u quantise(clip(Δ_u) w_u) + noise_u modulo 2^M, each node's term
    from the node pipeline's own function (``fedchain.secure.pipeline.noised_residues``)."""
    from fedchain.codec import sum_fixed
    from fedchain.secure.pipeline import noised_residues

    parts = [noised_residues(delta, secure=secure, secret=secret, weight=w)
             for delta, secret, w in zip(deltas, secrets, weights)]
    return sum_fixed(parts, secure.fixed)


class Crypto:
    """The federation's fixed identities: addresses, X25519 keys."""

    def __init__(self, nodes: int) -> None:
        from fedchain.secure.keys import public_key

        self.addresses = [node_address(i) for i in range(nodes)]
        self.private = [node_private_key(i) for i in range(nodes)]
        self.public = {a: public_key(sk) for a, sk in zip(self.addresses, self.private)}


def full_path_total(deltas: list[dict[str, np.ndarray]], secrets: list[bytes], weights: list[float], secure: Any,
                    crypto: Crypto, round_id: int, timing: dict[str, float]) -> tuple[dict[str, np.ndarray], Any]:
    """One real secure round with every node committing and posting: masked blobs, unmasking blobs,
    ``unmask_round``. Returns (unmasked total, UnmaskResult); adds wall times to ``timing``."""
    from fedchain.secure.keys import RoundContext
    from fedchain.secure.pipeline import node_masked_update, node_unmask_blob, unmask_round

    ctx = RoundContext(chain_id=CHAIN_ID, contract=CONTRACT, round=round_id)
    s = crypto.addresses
    t0 = time.perf_counter()
    blobs = {
        a: node_masked_update(d, secure=secure, ctx=ctx, me=a, private_key=sk, selected=s, public_keys=crypto.public,
                              secret=secret, weight=w)
        for a, sk, d, secret, w in zip(s, crypto.private, deltas, secrets, weights)
    }
    t1 = time.perf_counter()
    unmask = {a: node_unmask_blob(me=a, private_key=sk, ctx=ctx, selected=s, committed=s, public_keys=crypto.public)
              for a, sk in zip(s, crypto.private)}
    t2 = time.perf_counter()
    spec = {k: tuple(v.shape) for k, v in deltas[0].items()}
    result = unmask_round(blobs, unmask, secure=secure, ctx=ctx, selected=s, committed=s, expected=spec)
    t3 = time.perf_counter()
    timing["node_masked_update_s"] = timing.get("node_masked_update_s", 0.0) + (t1 - t0)
    timing["node_unmask_blob_s"] = timing.get("node_unmask_blob_s", 0.0) + (t2 - t1)
    timing["unmask_round_s"] = timing.get("unmask_round_s", 0.0) + (t3 - t2)
    timing["rounds"] = timing.get("rounds", 0) + 1
    timing["masked_blob_bytes"] = len(next(iter(blobs.values())))
    timing["unmask_blob_bytes"] = len(next(iter(unmask.values())))
    if not result.range.ok:
        raise RuntimeError(f"round {round_id}: unmasked sum out of range ({result.range.message})")
    return result.total, result


# --- privacy --------------------------------------------------------------------------------------
def epsilon_after(rounds: int, fixed: Any, dim: int, noise: Any, contributors: int, delta: float) -> dict[str, float]:
    """The accountant's epsilon after 1 and after ``rounds`` rounds."""
    from fedchain.privacy.accountant import RoundPrivacy, new_state, record_round

    state = new_state(delta)
    params = RoundPrivacy.for_round(fixed, dim, noise, contributors=contributors)
    first = None
    for r in range(1, rounds + 1):
        state = record_round(state, r, params)
        if first is None:
            first = state["epsilon"]
    return {"epsilon": float(state["epsilon"]), "epsilon_one_round": float(first), "order": int(state["order"]),
            "l2_sensitivity": params.l2_sensitivity, "counted_variance": params.variance}


# --- the run --------------------------------------------------------------------------------------
def run_curve(
    task_spec: str = "options-iv",
    *,
    nodes: int = 10,
    rounds: int = 30,
    seed: int = 0,
    zs: tuple[float, ...] = DEFAULT_Z,
    clip: float = 5.0,
    scale_bits: int = 20,
    modulus_bits: int = 32,
    threshold: int | None = None,
    max_samples: int = 10_000,
    delta: float = 1e-5,
    params: dict | None = None,
    training: dict | None = None,
    noisy_path: str = "full",
    arms: tuple[str, ...] | None = None,
    progress: Any = None,
    on_round: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Run every arm for one seed and return its figures (JSON-able).

    ``arms`` restricts the run to some of ``fedavg``, ``secure``, ``z=<value>``. ``on_round(arm=,
    round=, base=, trained=, samples=, secrets=, model=)`` is called after every merge (tests use
    it to recompute the secure merge independently). ``progress``: a rich Progress or None.
    """
    from fedchain.aggregator.secure_merge import secure_model, secure_weight, weight_sum
    from fedchain.codec import FixedPointConfig, load_arrays_into, rounded_l2_bound, state_dict_to_arrays
    from fedchain.privacy.clipping import l2_norm
    from fedchain.privacy.noise import SkellamNoise
    from fedchain.secure.pipeline import SecureConfig
    from fedchain.strategy import ClientUpdate, get_strategy
    from fedchain.tasks import load_task
    from fedchain.tasks.base import derive_seed

    if noisy_path not in ("full", "shortcut"):
        raise ValueError(f"noisy_path is 'full' or 'shortcut', got {noisy_path!r}")
    started = time.perf_counter()
    task = load_task(task_spec)
    params = task.resolve_params(params)
    train_cfg = {**task.default_training(), **(training or {})}
    epochs, batch, lr = int(train_cfg["epochs"]), int(train_cfg["batch_size"]), float(train_cfg["lr"])
    t = nodes // 2 + 1 if threshold is None else int(threshold)
    fixed = FixedPointConfig(clip=float(clip), scale_bits=int(scale_bits), modulus_bits=int(modulus_bits))
    data = [task.node_data(i, nodes, seed, params) for i in range(nodes)]
    samples = [min(len(d), max_samples) for d in data]
    weights = [secure_weight(n, max_samples) for n in samples]
    w_sum = weight_sum(samples, max_samples)  # protocol order = shard order (node_address grows with i)
    init = state_dict_to_arrays(task.build_model(params, seed))
    dim = sum(int(v.size) for v in init.values())
    l2 = rounded_l2_bound(fixed.clip * fixed.scale, dim)
    crypto = Crypto(nodes)
    fedavg = get_strategy("fedavg")

    plan: list[tuple[str, Any]] = [("fedavg", None), ("secure", SecureConfig(fixed=fixed, threshold=t, noise=None))]
    for z in zs:
        noise = SkellamNoise.from_noise_multiplier(float(z), l2, min_contributors=max(1, t - 1))
        plan.append((f"z={float(z):g}", SecureConfig(fixed=fixed, threshold=t, noise=noise)))
    if arms is not None:
        plan = [p for p in plan if p[0] in arms]

    model = task.build_model(params, seed)
    results: list[dict[str, Any]] = []
    timing: dict[str, float] = {}
    for name, secure in plan:
        path = "plaintext" if secure is None else ("full" if secure.noise is None else noisy_path)
        bar = progress.add_task(f"seed {seed} {name}", total=rounds) if progress is not None else None
        global_arrays = init
        history: list[float] = []
        norms: list[float] = []
        shortcut_checked = 0
        diverged = None
        arm_started = time.perf_counter()
        for r in range(1, rounds + 1):
            trained = []
            for i, d in enumerate(data):
                load_arrays_into(model, global_arrays)
                task.train(model, d, epochs=epochs, batch_size=batch, lr=lr, seed=derive_seed(seed, "fed", r - 1, i))
                trained.append(state_dict_to_arrays(model))
            if not all(np.isfinite(v).all() for w in trained for v in w.values()):
                diverged = r  # local training produced NaN/inf: the noise has destroyed the model
                break
            secrets = [round_secret(seed, r, i) for i in range(nodes)]
            if secure is None:
                updates = [ClientUpdate(node=a, weights=w, num_samples=n) for a, w, n in zip(crypto.addresses, trained, samples)]
                new = fedavg.step(global_arrays, updates, None).model
            else:
                deltas = [_delta(w, global_arrays) for w in trained]
                norms.extend(l2_norm(d) for d in deltas)
                if path == "full":
                    total, _ = full_path_total(deltas, secrets, weights, secure, crypto, r, timing if secure.noise is None else {})
                    if secure.noise is None:  # the shortcut is what unmasking recovers: check it, to the bit
                        short = shortcut_total(deltas, secrets, weights, secure)
                        if not all(np.array_equal(short[k], total[k]) for k in total):
                            raise AssertionError(f"round {r}: shortcut sum differs from the unmasked sum")
                        shortcut_checked += 1
                else:
                    total = shortcut_total(deltas, secrets, weights, secure)
                new = secure_model(global_arrays, total, fixed, w_sum)
            if on_round is not None:
                on_round(arm=name, round=r, base=global_arrays, trained=trained, samples=samples, secrets=secrets, model=new)
            global_arrays = new
            load_arrays_into(model, global_arrays)
            history.append(float(task.evaluate(model, None, seed=seed, params=params)[task.primary_metric]))
            if progress is not None:
                progress.update(bar, advance=1, description=f"seed {seed} {name} (round {r}, rmse {history[-1]:.4f})")
        load_arrays_into(model, global_arrays)
        final = {k: float(v) for k, v in task.evaluate(model, None, seed=seed, params=params).items()}
        rmse = final[task.primary_metric] if diverged is None and math.isfinite(final[task.primary_metric]) else None
        row: dict[str, Any] = {"arm": name, "path": path, "rmse": rmse, "diverged_round": diverged,
                               "final": {k: (v if math.isfinite(v) else None) for k, v in final.items()},
                               "history": [h if math.isfinite(h) else None for h in history],
                               "elapsed_s": round(time.perf_counter() - arm_started, 2)}
        if secure is not None:
            row["delta_norm"] = {"max": max(norms), "median": statistics.median(norms),
                                 "clipped_share": sum(n > fixed.clip for n in norms) / len(norms)}
            row["noise"] = secure.noise.to_dict() if secure.noise else None
            if secure.noise is None:
                row["shortcut_equals_unmasked_rounds"] = shortcut_checked
                row["epsilon"] = None
            else:
                row["z"] = float(name[2:])
                row.update(epsilon_after(rounds, fixed, dim, secure.noise, nodes, delta))
        results.append(row)

    by = {r["arm"]: r for r in results}
    out: dict[str, Any] = {
        "seed": seed,
        "dim": dim,
        "samples": samples,
        "weights": weights,
        "threshold": t,
        "l2_sensitivity": l2,
        "arms": results,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if "fedavg" in by:
        base = by["fedavg"]["rmse"]
        for row in results:
            row["vs_fedavg"] = None if row["rmse"] is None else row["rmse"] / base - 1.0
        if "secure" in by:
            out["gap"] = by["secure"]["vs_fedavg"]
    if timing.get("rounds"):
        k = timing["rounds"]
        out["crypto_per_round"] = {
            "rounds": k,
            "nodes": nodes,
            "node_masked_update_s_per_node": timing["node_masked_update_s"] / k / nodes,
            "node_unmask_blob_s_per_node": timing["node_unmask_blob_s"] / k / nodes,
            "unmask_round_s": timing["unmask_round_s"] / k,
            "all_nodes_and_unmask_s": (timing["node_masked_update_s"] + timing["node_unmask_blob_s"] + timing["unmask_round_s"]) / k,
            "masked_blob_bytes": timing["masked_blob_bytes"],
            "unmask_blob_bytes": timing["unmask_blob_bytes"],
        }
    return out


# --- summary, table, plot -------------------------------------------------------------------------
def summarise(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm: RMSE mean (and per seed), relative to FedAvg, epsilon."""
    rows = []
    for j, arm in enumerate(per_seed[0]["arms"]):
        cells = [s["arms"][j] for s in per_seed]
        rmses = [c["rmse"] for c in cells]
        ok = None not in rmses  # an arm that diverged on some seed has no mean
        row = {"arm": arm["arm"], "path": arm["path"], "z": arm.get("z"), "epsilon": arm.get("epsilon"),
               "epsilon_one_round": arm.get("epsilon_one_round"), "rmse_mean": statistics.fmean(rmses) if ok else None,
               "rmse_min": min(rmses) if ok else None, "rmse_max": max(rmses) if ok else None,
               "rmse_sd": (statistics.stdev(rmses) if len(rmses) > 1 else 0.0) if ok else None, "rmse_per_seed": rmses,
               "diverged_rounds": [c.get("diverged_round") for c in cells]}
        if "vs_fedavg" in arm:
            gaps = [c["vs_fedavg"] for c in cells]
            row["vs_fedavg_mean"] = statistics.fmean(gaps) if ok else None
            row["vs_fedavg_per_seed"] = gaps
        rows.append(row)
    return rows


def print_table(summary: list[dict[str, Any]], seeds: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"options-iv held-out RMSE (vol points), seeds {seeds}")
    for col in ("arm", "path", "z", "eps after R", "eps 1 round", "RMSE mean", "RMSE per seed", "vs FedAvg"):
        table.add_column(col, justify="right" if col not in ("arm", "path") else "left")
    for row in summary:
        eps = "-" if row["epsilon"] is None else f"{row['epsilon']:.4g}"
        eps1 = "-" if row["epsilon_one_round"] is None else f"{row['epsilon_one_round']:.4g}"
        vs = "-" if row["arm"] == "fedavg" or row.get("vs_fedavg_mean") is None else f"{100 * row['vs_fedavg_mean']:+.2f}%"
        mean = "diverged" if row["rmse_mean"] is None else f"{row['rmse_mean']:.4g}"
        per = " ".join("diverged" if x is None else f"{x:.4g}" for x in row["rmse_per_seed"])
        table.add_row(row["arm"], row["path"], "-" if row["z"] is None else f"{row['z']:g}", eps, eps1, mean, per, vs)
    Console(width=160).print(table)


def plot(summary: list[dict[str, Any]], path: Path, *, nodes: int, rounds: int, seeds: list[int], clip: float,
         max_samples: int, overlay: dict[str, Any] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {r["arm"]: r for r in summary}
    noisy = sorted((r for r in summary if r["epsilon"] is not None and r["rmse_mean"] is not None), key=lambda r: r["epsilon"])
    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=120)
    if noisy:
        eps = [r["epsilon"] for r in noisy]
        mean = [r["rmse_mean"] for r in noisy]
        err = [[m - r["rmse_min"] for m, r in zip(mean, noisy)], [r["rmse_max"] - m for m, r in zip(mean, noisy)]]
        ax.errorbar(eps, mean, yerr=err, marker="o", capsize=3, color="C3",
                    label=f"secure + Skellam noise, C = {clip:g}, cap {max_samples} (mean, min-max over seeds)")
        for r in noisy:
            ax.annotate(f"z={r['z']:g}", (r["epsilon"], r["rmse_mean"]), textcoords="offset points", xytext=(2, 6), fontsize=7,
                        rotation=50)
    if overlay is not None:
        rows = sorted((r for r in overlay["summary"] if r["epsilon"] is not None and r["rmse_mean"] is not None),
                      key=lambda r: r["epsilon"])
        ax.plot([r["epsilon"] for r in rows], [r["rmse_mean"] for r in rows], marker="s", ms=4, color="0.5",
                label=f"secure + noise, {overlay['label']}")
    if "fedavg" in by:
        ax.axhline(by["fedavg"]["rmse_mean"], color="C0", ls="--", label=f"transparent FedAvg ({by['fedavg']['rmse_mean']:.3f})")
    if "secure" in by:
        ax.axhline(by["secure"]["rmse_mean"], color="C2", ls=":", lw=2, label=f"secure, no noise ({by['secure']['rmse_mean']:.3f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 20)  # room for the z labels above the top points
    ax.set_xlabel(f"user-level ε after {rounds} rounds (δ = 1e-5, {nodes} nodes)")
    ax.set_ylabel("held-out RMSE (vol points, log)")
    ax.set_title(f"options-iv: held-out RMSE against ε (seeds {', '.join(map(str, seeds))})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- CLI ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="options-iv RMSE of secure-mode federated training against epsilon.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="options-iv", help="task name (load_task)")
    p.add_argument("--nodes", type=int, default=10, help="number of nodes N")
    p.add_argument("--rounds", type=int, default=30, help="federated rounds R")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="data, model and training seeds")
    p.add_argument("--z", type=float, nargs="*", default=list(DEFAULT_Z), help="Skellam noise multipliers (std / L2 sensitivity)")
    p.add_argument("--clip", type=float, default=5.0, help="L2 clip bound C of a node's delta")
    p.add_argument("--scale-bits", type=int, default=20, help="fixed-point scale 2^k")
    p.add_argument("--modulus-bits", type=int, default=32, choices=(32, 64), help="modulus 2^M")
    p.add_argument("--threshold", type=int, default=None, help="Shamir threshold t; None means N//2 + 1")
    p.add_argument("--max-samples", type=int, default=10_000, help="cap on a node's sample count (weight = min(n, cap) / cap)")
    p.add_argument("--delta", type=float, default=1e-5, help="delta of the (epsilon, delta) guarantee")
    p.add_argument("--noisy-path", choices=("full", "shortcut"), default="full",
                   help="noisy arms: real masking/unmasking, or the exact modular sum unmasking recovers")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures")
    p.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where to write the RMSE-vs-epsilon plot")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="per-seed result cache (resume)")
    p.add_argument("--no-cache", action="store_true", help="recompute every seed")
    p.add_argument("--overlay", type=Path, default=None,
                   help="a JSON file this script wrote for other settings: its noisy curve is drawn too and its summary kept")
    return p


def _spec(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {"version": VERSION, "task": args.task, "nodes": args.nodes, "rounds": args.rounds, "seed": seed,
            "z": [float(z) for z in args.z], "clip": args.clip, "scale_bits": args.scale_bits,
            "modulus_bits": args.modulus_bits, "threshold": args.threshold, "max_samples": args.max_samples,
            "delta": args.delta, "noisy_path": args.noisy_path}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    per_seed = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rounds"),
                  TimeElapsedColumn()) as progress:
        for seed in args.seeds:
            spec = _spec(args, seed)
            key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
            cached = args.cache / f"{key}.json"
            if cached.exists() and not args.no_cache:
                per_seed.append(json.loads(cached.read_text())["result"])
                progress.console.print(f"seed {seed}: cached ({cached})")
                continue
            result = run_curve(args.task, nodes=args.nodes, rounds=args.rounds, seed=seed, zs=tuple(args.z), clip=args.clip,
                               scale_bits=args.scale_bits, modulus_bits=args.modulus_bits, threshold=args.threshold,
                               max_samples=args.max_samples, delta=args.delta, noisy_path=args.noisy_path, progress=progress)
            args.cache.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"spec": spec, "result": result}, indent=1))
            per_seed.append(result)

    summary = summarise(per_seed)
    by = {r["arm"]: r for r in summary}
    gap = by["secure"]["vs_fedavg_mean"] if "secure" in by and "vs_fedavg_mean" in by["secure"] else None
    gaps = by["secure"].get("vs_fedavg_per_seed") if "secure" in by else None
    doc = {
        "version": VERSION,
        "command": "python scripts/secure_curve.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "parameters": {**{k: v for k, v in _spec(args, 0).items() if k != "seed"}, "seeds": args.seeds,
                       "threshold": per_seed[0]["threshold"], "dim": per_seed[0]["dim"],
                       "l2_sensitivity": per_seed[0]["l2_sensitivity"], "chain_id": CHAIN_ID, "contract": CONTRACT,
                       "accounting": "Skellam RDP, add/remove one node, all N contributing, no colluders, no sampling"},
        "target": {"max_gap": TARGET_GAP, "gap_mean": gap, "gap_per_seed": gaps,
                   "met": None if gaps is None else bool(max(abs(g) for g in gaps) <= TARGET_GAP)},
        "summary": summary,
        "per_seed": per_seed,
    }
    overlay = None
    if args.overlay is not None:
        other = json.loads(args.overlay.read_text())
        op = other["parameters"]
        overlay = {"label": f"C = {op['clip']:g}, cap {op['max_samples']}, seeds {op['seeds']}", "command": other["command"],
                   "parameters": op, "target": other["target"], "summary": other["summary"]}
        doc["overlay"] = overlay
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    plot(summary, args.plot, nodes=args.nodes, rounds=args.rounds, seeds=args.seeds, clip=args.clip,
         max_samples=args.max_samples, overlay=overlay)
    print_table(summary, args.seeds)
    if gaps is not None:
        print(f"secure (no noise) vs transparent FedAvg: {', '.join(f'{100 * g:+.3f}%' for g in gaps)} "
              f"(target |gap| <= {100 * TARGET_GAP:g}%: {'met' if doc['target']['met'] else 'missed'})")
    for s in per_seed:
        c = s.get("crypto_per_round")
        if c:
            print(f"seed {s['seed']}: real crypto path per round at N={c['nodes']}: {c['all_nodes_and_unmask_s']:.3f} s "
                  f"(node_masked_update {c['node_masked_update_s_per_node'] * 1e3:.1f} ms/node, node_unmask_blob "
                  f"{c['node_unmask_blob_s_per_node'] * 1e3:.1f} ms/node, unmask_round {c['unmask_round_s'] * 1e3:.1f} ms)")
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
