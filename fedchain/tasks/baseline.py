"""Does federating pay off? Centralised vs local-only vs federated, under one model and step budget.

- **federated**: FedAvg over ``rounds`` rounds; in each round every node trains the global model on
  its own data for the task's ``epochs`` (same batch size and learning rate as the demo), and the
  updates are merged with the same aggregation code the aggregator runs
  (``fedchain.strategy.get_strategy("fedavg")``), in process.
- **local-only**: each node trains the same initial model on its own data alone, for
  ``rounds x epochs`` epochs: exactly the optimiser steps it spends in the federation.
- **centralised**: all nodes' data pooled, ``rounds x epochs`` epochs: the federation's total
  optimiser steps (up to batch rounding), on one machine.
- **centralised_cosine** (reference, when the task uses the generic ``Task.train``): the same
  centralised run with the learning rate decayed to zero over the run (cosine). One long run can
  use a schedule that per-round training cannot; this shows what that is worth.

All three start from the same initial weights, and every model is scored by the task's
``evaluate`` on its global held-out set. ``fedchain baseline`` prints the table and can write the
figures as JSON (``--json``) and a picture (``--plot``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.tasks import load_task
from fedchain.tasks.base import NodeData, Task, derive_seed

#: Default number of federated rounds for the baseline (the demo runs fewer; see docs/results.md).
DEFAULT_ROUNDS = 100
#: The aggregator's default cap on a node's declared sample count (``fedchain aggregator --max-samples``).
DEFAULT_MAX_SAMPLES = 1_000_000
#: Targets from issue #4.
TARGET_VS_CENTRALISED = 1.10
TARGET_VS_MEDIAN_LOCAL = 0.70


def add_baseline_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``fedchain baseline`` options."""
    parser.add_argument("--task", default="options-iv", help="built-in task name or module:attribute")
    parser.add_argument("--seed", type=int, default=0, help="data, model and training seed")
    parser.add_argument("--nodes", type=int, default=5, help="number of nodes (venues)")
    parser.add_argument("--rounds", type=int, default=None, help=f"federated rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="save a picture (options-iv)")
    return parser


def run_baseline(
    task_spec: str = "options-iv",
    *,
    seed: int = 0,
    nodes: int = 5,
    rounds: int = DEFAULT_ROUNDS,
    progress: bool = True,
    plot_path: Path | None = None,
    params: dict | None = None,
    training: dict | None = None,
    tuned_reference: bool = True,
    strategy: str = "fedavg",
    strategy_params: dict | None = None,
    attack: str | None = None,
    attack_params: dict | None = None,
    byzantine: int = 0,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    lr_schedule: dict | None = None,
    references: bool = True,
) -> dict:
    """Train the three models and return their held-out metrics (see the module docstring).

    ``strategy``/``strategy_params`` pick the aggregation rule (the aggregator's own code);
    ``attack``/``attack_params`` with ``byzantine`` = K make the last K nodes hostile (see
    :func:`_federate`); ``lr_schedule`` is a per-round local learning-rate schedule as the
    aggregator writes it into round configs; ``references=False`` skips the centralised and
    local-only runs (the robustness benchmark needs only the federation).
    """
    from fedchain.codec import load_arrays_into, state_dict_to_arrays
    from fedchain.errors import ConfigError
    from fedchain.strategy import get_strategy

    if not isinstance(nodes, int) or nodes < 1:
        raise ConfigError(f"--nodes must be at least 1, got {nodes!r}")
    if not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds!r}")
    if isinstance(byzantine, bool) or not isinstance(byzantine, int) or not 0 <= byzantine < nodes:
        raise ConfigError(f"--byzantine must be in 0..{nodes - 1} (at least one honest node), got {byzantine!r}")
    if byzantine and not attack:
        raise ConfigError("--byzantine needs --attack NAME", hint="known attacks: see `fedchain baseline --help`")
    from fedchain.attacks import get_attack

    strategy_obj = get_strategy(strategy, strategy_params or {})
    attack_obj = get_attack(attack, attack_params or {}) if attack and attack != "none" else None
    hostile = frozenset(range(nodes - byzantine, nodes)) if attack_obj is not None else frozenset()
    started = time.perf_counter()
    task = load_task(task_spec)
    if plot_path is not None:
        from fedchain.tasks.plot import check_plottable

        check_plottable(task)
    params = task.resolve_params(params)
    train_cfg = {**task.default_training(), **(training or {})}
    epochs, batch, lr = int(train_cfg["epochs"]), int(train_cfg["batch_size"]), float(train_cfg["lr"])
    metric = task.primary_metric

    data = [task.node_data(i, nodes, seed, params) for i in range(nodes)]
    pooled = NodeData(_cat([d.x for d in data]), _cat([d.y for d in data]), {"pooled": nodes, "rows": 0})
    pooled.meta["rows"] = len(pooled)
    init = state_dict_to_arrays(task.build_model(params, seed))
    fed_steps = rounds * epochs * sum(math.ceil(len(d) / batch) for d in data)
    central_steps = rounds * epochs * math.ceil(len(pooled) / batch)
    local_steps = [rounds * epochs * math.ceil(len(d) / batch) for d in data]

    def fresh() -> Any:
        m = task.build_model(params, seed)
        load_arrays_into(m, init)
        return m

    bars = _Bars(progress)
    with bars:
        # --- federated ---------------------------------------------------------------------------
        bar = bars.add("federated", fed_steps)
        fed = _federate(task, data, init, fresh, strategy=strategy_obj, attack=attack_obj, hostile=hostile,
                        rounds=rounds, epochs=epochs, batch=batch, lr=lr, seed=seed, params=params,
                        max_samples=max_samples, lr_schedule=lr_schedule, bars=bars, bar=bar, metric=metric)
        history, fed_model = fed["history"], fed["model"]
        federated = history[-1] if history else {}
        federated = {k: v for k, v in federated.items() if k != "round"}
        if not references:
            result = {
                "task": task.name if task_spec == task.name else task_spec, "seed": seed, "nodes": nodes,
                "rounds": rounds, "training": {"epochs": epochs, "batch_size": batch, "lr": lr},
                "params": params, "metric": metric, "federated": {**federated, "steps": fed_steps},
                "history": history, **fed["setup"],
            }
            result["elapsed_s"] = round(time.perf_counter() - started, 2)
            return _jsonable(result)

        # --- centralised -------------------------------------------------------------------------
        bar = bars.add("centralised", central_steps)
        central_model = fresh()
        task.train(central_model, pooled, epochs=rounds * epochs, batch_size=batch, lr=lr,
                   seed=derive_seed(seed, "central"), progress=bars.callback(bar, 0))
        centralised = task.evaluate(central_model, None, seed=seed, params=params)
        tuned: dict[str, Any] | None = None
        if tuned_reference and type(task).train is Task.train:
            bar = bars.add("centralised, cosine lr (reference)", central_steps)
            tuned_model = fresh()
            task.train(tuned_model, pooled, epochs=rounds * epochs, batch_size=batch, lr=lr,
                       seed=derive_seed(seed, "central"), progress=bars.callback(bar, 0), schedule="cosine")
            tuned = {**task.evaluate(tuned_model, None, seed=seed, params=params), "steps": central_steps}

        # --- local-only --------------------------------------------------------------------------
        bar = bars.add("local-only", sum(local_steps))
        local_models, local_only = [], []
        done = 0
        for i, d in enumerate(data):
            m = fresh()
            task.train(m, d, epochs=rounds * epochs, batch_size=batch, lr=lr, seed=derive_seed(seed, "local", i),
                       progress=bars.callback(bar, done))
            done += local_steps[i]
            local_models.append(m)
            local_only.append({"shard": i, "venue": d.meta.get("venue", f"node {i}"), "rows": len(d),
                               **task.evaluate(m, None, seed=seed, params=params)})

    med = statistics.median(item[metric] for item in local_only)
    vs_c = federated[metric] / centralised[metric] if centralised[metric] else float("inf")
    vs_l = federated[metric] / med if med else float("inf")
    result: dict[str, Any] = {
        "task": task.name if task_spec == task.name else task_spec,
        "seed": seed,
        "nodes": nodes,
        "rounds": rounds,
        "training": {"epochs": epochs, "batch_size": batch, "lr": lr},
        "params": params,
        "metric": metric,
        "centralised": {**centralised, "steps": central_steps, "rows": len(pooled)},
        "federated": {**federated, "steps": fed_steps},
        "local_only": [{**item, "steps": s} for item, s in zip(local_only, local_steps)],
        "history": history,
        "centralised_cosine": tuned,
        **fed["setup"],
        "targets": {
            "federated_vs_centralised": vs_c,
            "federated_vs_median_local": vs_l,
            "median_local": med,
            "max_vs_centralised": TARGET_VS_CENTRALISED,
            "max_vs_median_local": TARGET_VS_MEDIAN_LOCAL,
            "met": bool(vs_c <= TARGET_VS_CENTRALISED and vs_l <= TARGET_VS_MEDIAN_LOCAL),
            "federated_vs_centralised_cosine": (federated[metric] / tuned[metric]) if tuned and tuned[metric] else None,
        },
    }
    if plot_path is not None:
        from fedchain.tasks.plot import plot_baseline

        plot_baseline(task, Path(plot_path), seed=seed, params=params,
                      models={"federated": fed_model, "centralised": central_model},
                      local_models=local_models, local_names=[item["venue"] for item in local_only],
                      local_rmse=[item[metric] for item in local_only])
        result["plot"] = str(plot_path)
    result["elapsed_s"] = round(time.perf_counter() - started, 2)
    return _jsonable(result)


def _federate(task: Task, data: list[NodeData], init: dict, fresh: Any, *, strategy: Any, attack: Any,
              hostile: frozenset[int], rounds: int, epochs: int, batch: int, lr: float, seed: int, params: dict,
              max_samples: int, lr_schedule: dict | None, bars: Any, bar: Any, metric: str) -> dict[str, Any]:
    """The federated run: ``rounds`` rounds of local training and ``strategy.step``, in process.

    Honest node ``i`` trains the global model on its data with seed ``derive_seed(seed, "fed", r, i)``
    and declares ``min(len(data), max_samples)`` samples. A hostile node (the last K shards):

    - trains on ``attack.poison(data)`` (data poisoning; the identity for other attacks), unless the
      attack is omniscient (it does not need its own update);
    - sends ``global + attack.apply(own delta, ctx)``, where ``ctx.honest`` holds the honest nodes'
      deltas of this round, in shard order (the omniscient attacks read them);
    - declares ``attack.claim(len(data), max_samples)`` samples (inflated samples).

    Stateful strategies carry their state from round to round, as the aggregator does.
    """
    from fedchain.attacks import AttackContext, apply_delta, delta_of
    from fedchain.codec import load_arrays_into, state_dict_to_arrays
    from fedchain.strategy import ClientUpdate

    import inspect

    n = len(data)
    # FedProx: the proximal term is the nodes' part (Task.train(prox_mu=...)), when the task supports it.
    mu = strategy.params.get("mu") if strategy.name == "fedprox" else None
    prox = {"prox_mu": float(mu)} if mu is not None and "prox_mu" in inspect.signature(task.train).parameters else {}
    attack_rng = lambda *parts: np.random.default_rng(derive_seed(seed, "attack", *parts))  # noqa: E731
    train_data = [attack.poison(d, task, attack_rng("poison", i)) if (attack is not None and i in hostile) else d
                  for i, d in enumerate(data)]
    global_arrays, state = init, None
    history: list[dict[str, float]] = []
    fed_model = fresh()
    done = 0
    weights_log: list[dict[str, float]] = []
    for r in range(rounds):
        round_lr = lr
        if lr_schedule:
            from fedchain.aggregator.config import scheduled_lr

            round_lr = scheduled_lr(lr, lr_schedule, r + 1)
        deltas: dict[int, np.ndarray] = {}
        trained: dict[int, dict[str, np.ndarray]] = {}
        for i, d in enumerate(train_data):
            if i in hostile and attack.omniscient:
                done += epochs * math.ceil(len(d) / batch)
                continue
            m = fresh()
            load_arrays_into(m, global_arrays)
            task.train(m, d, epochs=epochs, batch_size=batch, lr=round_lr, seed=derive_seed(seed, "fed", r, i),
                       progress=bars.callback(bar, done), **prox)
            done += epochs * math.ceil(len(d) / batch)
            trained[i] = state_dict_to_arrays(m)
            deltas[i] = delta_of(trained[i], global_arrays)
        honest = np.stack([deltas[i] for i in range(n) if i not in hostile])
        updates = []
        for i, d in enumerate(data):
            if i in hostile:
                own = deltas.get(i, np.zeros_like(honest[0]))
                ctx = AttackContext(n=n, f=len(hostile), rng=attack_rng("apply", r, i), honest=honest)
                weights = apply_delta(global_arrays, attack.apply(own, ctx)) if attack.forges_update else trained[i]
                samples = attack.claim(len(d), max_samples)
            else:
                weights, samples = trained[i], min(len(d), max_samples)
            updates.append(ClientUpdate(node=f"0x{i + 1:040x}", weights=weights, num_samples=samples))
        res = strategy.step(global_arrays, updates, state)
        global_arrays, state = res.model, res.state
        weights_log.append({k: float(v) for k, v in res.weights.items()})
        load_arrays_into(fed_model, global_arrays)
        scores = task.evaluate(fed_model, None, seed=seed, params=params)
        history.append({"round": r + 1, **scores})
        bars.describe(bar, f"federated (round {r + 1}/{rounds}, val {metric} {scores.get(metric, float('nan')):.3f})")
    hostile_weight = [sum(w.get(f"0x{i + 1:040x}", 0.0) for i in hostile) for w in weights_log]
    setup = {
        "strategy": strategy.config(),
        "attack": ({"name": attack.name, "params": attack.params} if attack is not None else None),
        "byzantine": len(hostile),
        "hostile_shards": sorted(hostile),
        "max_samples": max_samples,
        "lr_schedule": lr_schedule,
        "prox_mu_applied": prox.get("prox_mu"),
        "hostile_weight": {"mean": float(np.mean(hostile_weight)) if hostile_weight else 0.0,
                           "last": hostile_weight[-1] if hostile_weight else 0.0},
    }
    return {"history": history, "model": fed_model, "setup": setup}


def _cat(parts: list[Any]) -> Any:
    import torch

    return torch.cat(parts, dim=0)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class _Bars:
    """rich progress bars, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Any = None

    def __enter__(self) -> _Bars:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("steps"), TimeElapsedColumn())
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def add(self, name: str, total: int) -> Any:
        return self.progress.add_task(name, total=total) if self.progress is not None else None

    def describe(self, bar: Any, text: str) -> None:
        if self.progress is not None:
            self.progress.update(bar, description=text)

    def callback(self, bar: Any, offset: int) -> Any:
        if self.progress is None:
            return None
        progress = self.progress

        def update(step: int, total: int) -> None:
            if step == total or step % 20 == 0:
                progress.update(bar, completed=offset + step)

        return update

