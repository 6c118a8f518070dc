#!/usr/bin/env python
"""Robustness benchmarks: every registered strategy x every attack, and server optimisers.

Every run ("cell") is ``fedchain.tasks.baseline.run_baseline`` with ``references=False`` (the
federation only): the aggregator's own strategy code, in process, with the last K nodes hostile
(``fedchain.attacks``; the omniscient attacks see the real honest deltas of the round). Each
cell's result is cached as JSON under ``--cache`` (default ``.fedchain/robustness``), keyed by a
hash of its full spec, so an interrupted run resumes where it stopped and ``report`` rebuilds the
tables from whatever is cached.

    python scripts/robustness.py table1 --task options-iv --seeds 0 1 2 --rounds 100 --workers 2
    python scripts/robustness.py table1 --task digits --seeds 0 1 2 --workers 2
    python scripts/robustness.py table2 --seeds 0 1 2 --workers 2
    python scripts/robustness.py report            # tables + plot into docs/robustness.md, docs/img/

``table1``: rows are the registered strategies (``fedchain.strategy.STRATEGIES``, each with the
parameters of :data:`GRID_PARAMS` for 2 hostile of 10, plus :data:`EXTRA_ROWS`), columns are
``none`` plus every registered attack (``fedchain.attacks.ATTACKS``) with its default parameters.
``table2``: a small sweep of each server optimiser's parameters on seed 0 (:data:`SWEEP`), then the
best setting of each on every seed, against the cosine-centralised reference (docs/results.md),
with 5 venues and 100 rounds as there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_CACHE = REPO / ".fedchain" / "robustness"
DOC = REPO / "docs" / "robustness.md"
IMG = REPO / "docs" / "img"

#: Parameters each rule runs with in table 1 (10 nodes, 2 hostile); a rule not listed runs with
#: its defaults. Bulyan needs n >= 4f + 3, so with 10 nodes it can assume at most f = 1.
GRID_PARAMS: dict[str, dict[str, Any]] = {
    "trimmed_mean": {"beta": 0.2},
    "krum": {"f": 2},
    "multi_krum": {"f": 2},
    "bulyan": {"f": 1},
}
#: Extra rows: (label, strategy, params).
EXTRA_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("centered_clip+bucketing", "centered_clip", {"pre": [{"name": "bucketing", "s": 2}]}),
]
#: Server optimiser settings tried on seed 0 for table 2.
SWEEP: dict[str, list[dict[str, Any]]] = {
    "fedavgm": [{"server_lr": 1.0, "momentum": 0.5}, {"server_lr": 1.0, "momentum": 0.9},
                {"server_lr": 0.5, "momentum": 0.9}],
    "fedadam": [{"server_lr": 0.003}, {"server_lr": 0.01}, {"server_lr": 0.03}],
    "fedyogi": [{"server_lr": 0.003}, {"server_lr": 0.01}, {"server_lr": 0.03}],
}
#: Second stage of the sweep: the same optimisers with the local learning rate decayed over the
#: rounds (``--lr-schedule cosine:100``, written into each round config), and FedAvg with it.
COSINE = {"kind": "cosine", "rounds": 100, "min_lr": 0.0}
SWEEP_SCHEDULED: list[tuple[str, dict[str, Any]]] = [
    ("fedavg", {}), ("fedavgm", {"server_lr": 1.0, "momentum": 0.5}), ("fedadam", {"server_lr": 0.01}),
    ("fedyogi", {"server_lr": 0.01}),
    # Third stage: more momentum under the schedule, at the same effective step eta / (1 - beta)
    # = 2 as momentum 0.5 (0.7 at 0.6, 0.8 at 0.4) and larger (0.6 at 1.0: 2.5; 0.7 at 1.0: 3.3).
    ("fedavgm", {"server_lr": 1.0, "momentum": 0.6}), ("fedavgm", {"server_lr": 1.0, "momentum": 0.7}),
    ("fedavgm", {"server_lr": 0.6, "momentum": 0.7}), ("fedavgm", {"server_lr": 0.4, "momentum": 0.8}),
]
TABLE2_NODES, TABLE2_ROUNDS = 5, 100


# --- cells ----------------------------------------------------------------------------------------
def cell_spec(task: str, seed: int, *, nodes: int, rounds: int, strategy: str, strategy_params: dict,
              attack: str | None, byzantine: int, label: str | None = None, kind: str = "federated",
              lr_schedule: dict | None = None) -> dict[str, Any]:
    return {"kind": kind, "task": task, "seed": seed, "nodes": nodes, "rounds": rounds, "strategy": strategy,
            "strategy_params": strategy_params, "attack": attack, "attack_params": {},
            "byzantine": byzantine if attack else 0, "label": label or strategy, "lr_schedule": lr_schedule}


def cell_key(spec: dict[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in spec.items() if k != "label"}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cell_path(cache: Path, spec: dict[str, Any]) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{spec['kind']}-{spec['label']}-{spec['attack'] or 'none'}-s{spec['seed']}")
    return cache / spec["task"] / f"{name}-{cell_key(spec)}.json"


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """One cell, in a worker process."""
    from fedchain.tasks.baseline import run_baseline

    started = time.perf_counter()
    if spec["kind"] == "cosine_reference":
        r = run_baseline(spec["task"], seed=spec["seed"], nodes=spec["nodes"], rounds=spec["rounds"], progress=False)
        keep = {"centralised": r["centralised"], "centralised_cosine": r["centralised_cosine"],
                "federated": r["federated"], "metric": r["metric"]}
    else:
        r = run_baseline(spec["task"], seed=spec["seed"], nodes=spec["nodes"], rounds=spec["rounds"], progress=False,
                         strategy=spec["strategy"], strategy_params=spec["strategy_params"], attack=spec["attack"],
                         attack_params=spec["attack_params"], byzantine=spec["byzantine"],
                         lr_schedule=spec["lr_schedule"], references=False)
        keep = {k: r[k] for k in ("federated", "metric", "history", "strategy", "attack", "hostile_weight",
                                  "hostile_shards") if k in r}
    return {"spec": spec, "result": keep, "elapsed_s": round(time.perf_counter() - started, 1)}


def load(cache: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    p = cell_path(cache, spec)
    if p.is_file():
        try:
            return json.loads(p.read_text())
        except ValueError:
            return None
    return None


def run_cells(specs: list[dict[str, Any]], cache: Path, workers: int) -> None:
    todo = [s for s in specs if load(cache, s) is None]
    print(f"{len(specs)} cells, {len(specs) - len(todo)} cached, {len(todo)} to run with {workers} worker(s)",
          flush=True)
    if not todo:
        return
    started = time.perf_counter()

    def save(out: dict[str, Any]) -> None:
        p = cell_path(cache, out["spec"])
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(p)
        res = out["result"]
        m = res.get("metric", "rmse")
        val = (res.get("centralised_cosine") or res["federated"]).get(m)
        s = out["spec"]
        print(f"  {s['task']} seed {s['seed']} {s['label']:<24} {str(s['attack'] or 'none'):<12} {m} {val:.4f} "
              f"({out['elapsed_s']} s; {time.perf_counter() - started:.0f} s so far)", flush=True)

    if workers <= 1:
        for s in todo:
            save(run_cell(s))
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(run_cell, s) for s in todo]
        for f in as_completed(futures):
            save(f.result())


# --- grids ----------------------------------------------------------------------------------------
def table1_rows() -> list[tuple[str, str, dict[str, Any]]]:
    from fedchain.strategy import STRATEGIES

    rows = [(name, name, dict(GRID_PARAMS.get(name, {}))) for name in sorted(STRATEGIES)]
    rows = sorted(rows, key=lambda r: (r[0] != "fedavg", r[0]))
    return rows + [r for r in EXTRA_ROWS if r[1] in STRATEGIES]


def table1_attacks() -> list[str | None]:
    from fedchain.attacks import ATTACKS

    order = ["sign_flip", "scaling", "noise", "data_poison", "inflate", "alie", "ipm", "min_max", "min_sum"]
    names = [a for a in order if a in ATTACKS] + sorted(set(ATTACKS) - set(order))
    return [None, *names]


def table1_specs(task: str, seeds: list[int], nodes: int, byzantine: int, rounds: int,
                 strategies: list[str] | None, attacks: list[str] | None) -> list[dict[str, Any]]:
    specs = []
    for seed in seeds:  # seed-major: a partial run has whole seeds
        for label, name, params in table1_rows():
            if strategies and label not in strategies:
                continue
            for attack in table1_attacks():
                if attacks and (attack or "none") not in attacks:
                    continue
                specs.append(cell_spec(task, seed, nodes=nodes, rounds=rounds, strategy=name, strategy_params=params,
                                       attack=attack, byzantine=byzantine, label=label))
    return specs


def sweep_specs(seed: int) -> list[dict[str, Any]]:
    from fedchain.strategy import STRATEGIES

    out = [cell_spec("options-iv", seed, nodes=TABLE2_NODES, rounds=TABLE2_ROUNDS, strategy="fedavg",
                     strategy_params={}, attack=None, byzantine=0)]
    for name, settings in SWEEP.items():
        if name not in STRATEGIES:
            continue
        for params in settings:
            out.append(_t2_spec(seed, name, params, None))
    for name, params in SWEEP_SCHEDULED:
        if name in STRATEGIES:
            out.append(_t2_spec(seed, name, params, COSINE))
    return out


def _t2_spec(seed: int, name: str, params: dict[str, Any], schedule: dict | None) -> dict[str, Any]:
    label = _label(name, params) + (" + cosine lr" if schedule else "")
    return cell_spec("options-iv", seed, nodes=TABLE2_NODES, rounds=TABLE2_ROUNDS, strategy=name,
                     strategy_params=params, attack=None, byzantine=0, label=label, lr_schedule=schedule)


def reference_spec(seed: int) -> dict[str, Any]:
    return cell_spec("options-iv", seed, nodes=TABLE2_NODES, rounds=TABLE2_ROUNDS, strategy="fedavg",
                     strategy_params={}, attack=None, byzantine=0, label="centralised", kind="cosine_reference")


def best_settings(cache: Path) -> dict[str, tuple[dict[str, Any], dict | None]]:
    """Per server optimiser, the sweep setting (params, lr schedule) with the lowest seed-0 RMSE
    (cached cells only)."""
    best: dict[str, tuple[float, dict[str, Any], dict | None]] = {}
    for spec in sweep_specs(0):
        if spec["strategy"] == "fedavg":
            continue
        got = load(cache, spec)
        if got is None:
            continue
        v = got["result"]["federated"].get("rmse")
        if v is not None and (spec["strategy"] not in best or v < best[spec["strategy"]][0]):
            best[spec["strategy"]] = (v, spec["strategy_params"], spec["lr_schedule"])
    return {k: (v[1], v[2]) for k, v in best.items()}


def _t2_rows(cache: Path) -> list[tuple[str, dict[str, Any], dict | None]]:
    """FedAvg, FedAvg with the cosine schedule, then each optimiser's best seed-0 setting."""
    return [("fedavg", {}, None), ("fedavg", {}, COSINE)] + [(k, p, sch) for k, (p, sch) in best_settings(cache).items()]


def table2_specs(seeds: list[int], cache: Path) -> list[dict[str, Any]]:
    out = []
    for seed in seeds:
        out.append(reference_spec(seed))
        out += [_t2_spec(seed, name, params, sch) for name, params, sch in _t2_rows(cache)]
    return out


def _label(name: str, params: dict[str, Any]) -> str:
    return name + "(" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + ")" if params else name


# --- report ---------------------------------------------------------------------------------------
def _metric_of(task: str) -> tuple[str, str]:
    """(key in results, column title): RMSE in vol points, or accuracy for digits."""
    return ("accuracy", "accuracy") if task == "digits" else ("rmse", "RMSE (vol points)")


def table1_markdown(cache: Path, task: str, seeds: list[int], nodes: int, byzantine: int, rounds: int) -> str:
    key, title = _metric_of(task)
    higher = key == "accuracy"
    attacks = table1_attacks()
    rows = table1_rows()
    vals: dict[tuple[str, str], list[float]] = {}
    seeds_done: dict[tuple[str, str], list[int]] = {}
    for seed in seeds:
        for label, name, params in rows:
            for attack in attacks:
                got = load(cache, cell_spec(task, seed, nodes=nodes, rounds=rounds, strategy=name,
                                            strategy_params=params, attack=attack, byzantine=byzantine, label=label))
                if got is None:
                    continue
                v = got["result"]["federated"].get(key)
                if v is None or not math.isfinite(v):
                    v = float("inf") if not higher else 0.0
                vals.setdefault((label, attack or "none"), []).append(v)
                seeds_done.setdefault((label, attack or "none"), []).append(seed)
    ref_seeds = seeds_done.get(("fedavg", "none"), [])
    if not ref_seeds:
        return f"_No cached cells for {task} yet: run `python scripts/robustness.py table1 --task {task}`._\n"

    def mean_over(cell: tuple[str, str]) -> float | None:
        # only the seeds the clean-FedAvg reference has, so ratios compare like with like
        pairs = [v for v, s in zip(vals.get(cell, []), seeds_done.get(cell, [])) if s in ref_seeds]
        if len(pairs) != len(ref_seeds):
            return None
        return statistics.fmean(pairs)

    ref = mean_over(("fedavg", "none"))
    from fedchain.strategy import STRATEGIES

    robust = {label for label, name, _ in rows if getattr(STRATEGIES.get(name), "robust", False)}
    lines = [f"Held-out {title}, mean over seed(s) {', '.join(map(str, ref_seeds))}; in brackets the ratio to clean "
             f"FedAvg ({ref:.4f}). {task}, {nodes} nodes of which {byzantine} hostile (the last {byzantine} shards), "
             f"{rounds} rounds. {'Higher' if higher else 'Lower'} is better.", ""]
    head = ["strategy", *[a or "none" for a in attacks]]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    best: dict[str, tuple[float, str]] = {}
    for label, _, _ in rows:
        cells = [f"`{label}`"]
        for attack in attacks:
            m = mean_over((label, attack or "none"))
            if m is None:
                cells.append("-")
                continue
            ratio = m / ref if ref else float("nan")
            cells.append(f"{m:.3f} ({ratio:.2f})" if math.isfinite(m) else "diverged")
            if label in robust and attack is not None:
                score = -m if higher else m
                if attack not in best or score < best[attack][0]:
                    best[attack] = (score, label)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Best defence per attack (the best robust rule: " + ", ".join(sorted(robust)) + "), its ratio to "
              "clean FedAvg, and FedAvg's own:", "",
              "| attack | best defence | " + title + " | ratio | FedAvg under the attack (ratio) |", "|---|---|---|---|---|"]
    for attack in attacks[1:]:
        if attack not in best:
            continue
        label = best[attack][1]
        m = mean_over((label, attack))
        fa = mean_over(("fedavg", attack))
        fa_txt = f"{fa:.3f} ({fa / ref:.2f})" if fa is not None and math.isfinite(fa) else "-"
        lines.append(f"| {attack} | `{label}` | {m:.3f} | {m / ref:.3f} | {fa_txt} |")
    return "\n".join(lines) + "\n"


def table2_markdown(cache: Path, seeds: list[int]) -> str:
    lines = ["Sweep on seed 0 (options-iv, 5 venues, 100 rounds, no attack), held-out RMSE:", "",
             "| strategy | RMSE | vs FedAvg |", "|---|---|---|"]
    sweep = sweep_specs(0)
    fa0 = load(cache, sweep[0])
    for spec in sweep:
        got = load(cache, spec)
        if got is None:
            continue
        v = got["result"]["federated"]["rmse"]
        rel = f"{v / fa0['result']['federated']['rmse']:.3f}" if fa0 else "-"
        lines.append(f"| `{spec['label']}` | {_fmt(v)} | {rel} |")
    rows = _t2_rows(cache)
    lines += ["", "Each optimiser's best seed-0 setting on every seed, against the cosine-centralised reference "
              "(ratio in brackets; target <= 1.05):", ""]
    cols = ["seed", "centralised, cosine lr"] + [_t2_spec(0, n, p, sch)["label"] for n, p, sch in rows]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for seed in seeds:
        ref = load(cache, reference_spec(seed))
        if ref is None:
            continue
        rc = ref["result"]["centralised_cosine"]["rmse"]
        row = [str(seed), f"{rc:.3f}"]
        for name, params, sch in rows:
            got = load(cache, _t2_spec(seed, name, params, sch))
            row.append(f"{got['result']['federated']['rmse']:.3f} ({got['result']['federated']['rmse'] / rc:.3f})"
                       if got else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "diverged" if v is None or not math.isfinite(v) else f"{v:.3f}"


def plot(cache: Path, seeds: list[int], nodes: int, byzantine: int, rounds: int, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = seeds[0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    rows = {label: (name, params) for label, name, params in table1_rows()}
    key_cells = [("fedavg", None, "k-", "FedAvg, clean"), ("fedavg", "scaling", "r--", "FedAvg, scaling"),
                 ("fedavg", "inflate", "b--", "FedAvg, inflated samples"),
                 ("fedavg", "data_poison", "g--", "FedAvg, data poisoning"),
                 ("fedavg", "alie", "m--", "FedAvg, ALIE")]
    for robust, style in (("trimmed_mean", "-"), ("centered_clip", ":")):
        if robust in rows:
            key_cells += [(robust, "scaling", "r" + style, f"{robust}, scaling"),
                          (robust, "inflate", "b" + style, f"{robust}, inflated samples"),
                          (robust, "alie", "m" + style, f"{robust}, ALIE"),
                          (robust, "min_max", "c" + style, f"{robust}, min-max")]
    drawn = 0
    for label, attack, style, text in key_cells:
        if label not in rows:
            continue
        name, params = rows[label]
        got = load(cache, cell_spec("options-iv", seed, nodes=nodes, rounds=rounds, strategy=name,
                                    strategy_params=params, attack=attack, byzantine=byzantine, label=label))
        if got is None:
            continue
        h = got["result"]["history"]
        ax.plot([x["round"] for x in h], [x["rmse"] for x in h], style, label=text, lw=1.3)
        drawn += 1
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("held-out RMSE (vol points)")
    ax.set_title(f"options-iv, {nodes} venues, {byzantine} hostile, seed {seed}")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    ref = load(cache, reference_spec(0))
    for name, params, sch in _t2_rows(cache):
        spec = _t2_spec(0, name, params, sch)
        got = load(cache, spec)
        if got is None:
            continue
        h = got["result"]["history"]
        ax.plot([x["round"] for x in h], [x["rmse"] for x in h], label=spec["label"], lw=1.3)
        drawn += 1
    if ref is not None:
        rc = ref["result"]["centralised_cosine"]["rmse"]
        ax.axhline(rc, color="k", ls=":", label=f"centralised, cosine lr ({rc:.3f})")
        ax.axhline(1.05 * rc, color="grey", ls=":", lw=0.8, label="1.05 x that")
    ax.set_yscale("log")
    ax.set_ylim(top=5)
    ax.set_xlabel("round")
    ax.set_title(f"server optimisers, {TABLE2_NODES} venues, no attack, seed 0")
    ax.legend(fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text:
        return text + f"\n{start}\n{body}{end}\n"
    a, b = text.index(start) + len(start), text.index(end)
    return text[:a] + "\n" + body + text[b:]


def cmd_report(args: argparse.Namespace) -> int:
    text = DOC.read_text() if DOC.exists() else "# Robustness\n"
    t1_seeds = args.table1_seeds or args.seeds
    text = replace_block(text, "table1-options-iv",
                         table1_markdown(args.cache, "options-iv", t1_seeds, args.nodes, args.byzantine, args.rounds))
    text = replace_block(text, "table1-digits",
                         table1_markdown(args.cache, "digits", t1_seeds, args.nodes, args.byzantine,
                                         args.digits_rounds))
    text = replace_block(text, "table2", table2_markdown(args.cache, args.seeds))
    png = plot(args.cache, t1_seeds, args.nodes, args.byzantine, args.rounds, IMG / "robustness-rounds.png")
    DOC.write_text(text)
    print(f"wrote {DOC}" + (f" and {png}" if png else ""))
    return 0


# --- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
        sp.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="one JSON file per cell (default: .fedchain/robustness)")
        sp.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                        help="cells run in parallel (default: up to 2)")

    t1 = sub.add_parser("table1", help="every strategy x every attack")
    common(t1)
    t1.add_argument("--task", default="options-iv", choices=("options-iv", "digits"), help="the task (default: options-iv)")
    t1.add_argument("--nodes", type=int, default=10, help="nodes, one shard each (default: 10)")
    t1.add_argument("--byzantine", type=int, default=2, help="hostile nodes, the last shards (default: 2)")
    t1.add_argument("--rounds", type=int, default=100, help="rounds per cell (default: 100)")
    t1.add_argument("--strategies", nargs="*", default=None, help="row labels to run (default: all)")
    t1.add_argument("--attacks", nargs="*", default=None, help="attacks to run, 'none' for clean (default: all)")
    t2 = sub.add_parser("table2", help="server optimisers vs the cosine-centralised reference")
    common(t2)
    rp = sub.add_parser("report", help="write the tables and the plot from the cache")
    common(rp)
    rp.add_argument("--nodes", type=int, default=10, help="table 1's nodes (default: 10)")
    rp.add_argument("--byzantine", type=int, default=2, help="table 1's hostile nodes (default: 2)")
    rp.add_argument("--rounds", type=int, default=100, help="options-iv table 1 rounds (default: 100)")
    rp.add_argument("--digits-rounds", type=int, default=100, help="digits table 1 rounds (default: 100)")
    rp.add_argument("--table1-seeds", type=int, nargs="+", default=None,
                    help="seeds of tables 1 and 1b, e.g. those every cell has (default: --seeds)")
    args = p.parse_args(argv)
    if args.cmd == "table1":
        run_cells(table1_specs(args.task, args.seeds, args.nodes, args.byzantine, args.rounds, args.strategies,
                               args.attacks), args.cache, args.workers)
        return 0
    if args.cmd == "table2":
        run_cells(sweep_specs(0), args.cache, args.workers)
        run_cells(table2_specs(args.seeds, args.cache), args.cache, args.workers)
        return 0
    return cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
