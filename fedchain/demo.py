"""``fedchain demo``: a whole federation on this machine.

It starts its own anvil, deploys the contracts (genesis model from the task, dev accounts 1..N
admitted as nodes), starts the aggregator service (real uvicorn, with the dashboard) and N node
processes, runs R rounds, and prints a per-round table. Then it tells the story: the federated
model against each node's local-only model and the centralised reference, trained in process with
the same budget (R x epochs on the same data, from the same genesis weights) and scored on the
same held-out set, and one line with the next commands to try. Logs go to ``<workdir>/logs``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.console import Group
from rich.live import Live
from rich.text import Text

from fedchain import launch
from fedchain.chain.accounts import dev_account, secure_keys
from fedchain.devchain import env_with_repo, free_port, start_anvil, stop_process, stop_processes
from fedchain.errors import FedchainError
from fedchain.settings import REPO_ROOT, Settings


#: The `--mode secure` options the demo hands to the aggregator (fedchain.cliutil.add_secure_arguments).
SECURE_OPTIONS = ("mode", "clip", "scale_bits", "modulus_bits", "threshold", "noise_multiplier", "colluders",
                  "privacy_budget", "privacy_delta", "unmask_window", "unmask_linger")
#: The commit-phase options the demo hands to the aggregator.
ROUND_OPTIONS = ("relay_cutoff", "close_window")


def node_command(*, rpc_url: str, api_url: str, dev_index: int, shard: int, num_shards: int, task: str,
                 rounds: int | None, data_seed: int = 0, attack: str | None = None,
                 attack_params: list[str] | None = None, crash_at: str | None = None,
                 ready_file: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url, "--dev-account", str(dev_index),
           "--shard", str(shard), "--num-shards", str(num_shards), "--task", task, "--data-seed", str(data_seed)]
    if rounds is not None:
        cmd += ["--rounds", str(rounds)]
    if ready_file is not None:
        cmd += ["--ready-file", str(ready_file)]
    if crash_at:
        cmd += ["--crash-at", crash_at]
    if attack:
        cmd += ["--attack", attack]
        for pair in attack_params or []:
            cmd += ["--attack-param", pair]
    return cmd


def _spawn_mode(asked: str, console: Console) -> str:
    """``fork`` or ``exec`` for ``--spawn`` (``auto``: fork where it is safe, else exec)."""
    if asked == "exec":
        return "exec"
    if not launch.can_fork() or not launch.single_threaded():
        if asked == "fork":
            console.print("[yellow]--spawn fork is not possible here (no fork, or threads already running); "
                          "starting the nodes with python -m node[/]")
        return "exec"
    return "fork"


def ready_file(workdir: Path, index: int) -> Path:
    return workdir / "logs" / f"node-{index}.ready"


def wait_for_nodes(procs: list[subprocess.Popen], files: list[Path], logs: Path, *, timeout: float,
                   console: Console, poll: float = 0.1) -> float:
    """Wait until every node process has written its ready file (``--ready-file``); returns the
    seconds waited. A node that exits first, or a timeout, is a FedchainError with the log's tail."""
    started = time.monotonic()
    with console.status(f"waiting for {len(procs)} nodes to start (torch, web3, data)…") as status:
        while True:
            ready = sum(f.exists() for f in files)
            if ready == len(files):
                return time.monotonic() - started
            for i, p in enumerate(procs, start=1):
                if p.poll() is not None and not files[i - 1].exists():
                    tail = _tail(logs / f"node-{i}.log")
                    raise FedchainError(f"node {i} exited with code {p.returncode} before it was ready:\n{tail}",
                                        hint=f"see {logs / f'node-{i}.log'}")
            if time.monotonic() - started > timeout:
                raise FedchainError(f"only {ready} of {len(files)} nodes were ready after {timeout:.0f} s",
                                    hint="a loaded machine starts nodes slowly: pass a larger --ready-timeout, "
                                         f"or fewer --nodes; logs in {logs}")
            status.update(f"{ready}/{len(files)} nodes ready (torch, web3, data)…")
            time.sleep(poll)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def hostile_plan(args: argparse.Namespace, n: int, workdir: Path) -> tuple[int, str | None, list[str]]:
    """(K, attack, its --attack-param list) for ``--byzantine K --attack NAME``: the last K of the N
    nodes run the attack. The demo tells them n and f, and lets omniscient attacks collude through a
    folder of the workdir (they still cannot see the honest nodes' sealed updates)."""
    from fedchain.errors import ConfigError

    k = int(getattr(args, "byzantine", 0) or 0)
    attack = getattr(args, "attack", None)
    if k == 0:
        if attack:
            raise ConfigError("--attack needs --byzantine K (how many of the nodes run it)")
        return 0, None, []
    if not attack:
        raise ConfigError("--byzantine needs --attack NAME", hint="e.g. --byzantine 2 --attack alie")
    if not 0 < k < n:
        raise ConfigError(f"--byzantine must be in 1..{n - 1} (at least one honest node), got {k}")
    from fedchain.attacks import get_attack, parse_params
    from fedchain.attacks.process import Hostile

    pairs = list(getattr(args, "attack_param", None) or [])
    given = parse_params(pairs)
    pairs += [f"{key}={value}" for key, value in (("n", n), ("f", k)) if key not in given]
    if get_attack(attack, {}).omniscient and "collude_dir" not in given:
        pairs.append(f"collude_dir={workdir / 'collude'}")
    Hostile(attack, pairs, num_shards=n)  # validate now, not in the node processes
    return k, attack, pairs


def run_demo(args: argparse.Namespace, console: Console) -> int:
    from fedchain.aggregator.server import start_api
    from fedchain.aggregator.service import genesis_model
    from fedchain.chain.client import ChainClient
    from fedchain.chain.deploy import deploy
    from fedchain.aggregator.factory import build_aggregator
    from fedchain.console import round_table
    from fedchain.store import FilesystemStore
    from fedchain.tasks import load_task

    check_counts(args)
    n, rounds = args.nodes, args.rounds
    min_updates = args.min_updates or max(1, n - 1)
    workdir: Path = args.workdir
    byzantine, attack, attack_params = hostile_plan(args, n, workdir)
    crashes = crash_plan(args, n)  # a bad --crash-at fails before anything starts
    strategy_params = _strategy_params(args)
    from fedchain.aggregator.lock import take

    # One demo per workdir: a second one would empty the folder under the first.
    workdir.parent.mkdir(parents=True, exist_ok=True)
    held = take(workdir.parent / f".{workdir.name}.lock", {"pid": os.getpid(), "data_dir": str(workdir),
                                                            "started": time.time()},
                what=f"the demo folder {workdir}", hint="stop the other demo first (Ctrl-C), or pass another --workdir")
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)
    chain_port = args.chain_port or free_port()
    api_port = args.port or free_port()
    rpc_url = f"http://127.0.0.1:{chain_port}"
    api_url = f"http://127.0.0.1:{api_port}"
    settings = Settings().model_copy(update={
        "rpc_url": rpc_url, "api_url": api_url, "api_port": api_port, "api_host": "127.0.0.1",
        "data_dir": workdir / "aggregator", "deployments_dir": workdir / "deployments",
    })
    task = load_task(args.task)
    anvil = api = None
    procs: list[subprocess.Popen] = []
    try:
        with console.status("starting anvil and deploying the contracts…"):
            # A block every second: deadlines are judged by chain time, which an idle chain would not advance.
            anvil = start_anvil(chain_port, accounts=max(10, n + 1), log_path=workdir / "logs" / "anvil.log",
                                block_time=1)
            admin = dev_account(0)
            _, genesis = genesis_model(task, task.default_params(), args.seed)
            dep = deploy(rpc_url, admin, repo_root=REPO_ROOT, deployments_dir=settings.deployments_dir,
                         grace_period=5, genesis_hash=genesis, admit=[(dev_account(i).address, secure_keys(dev_account(i))[1]) for i in range(1, n + 1)],
                         log=lambda m: None)
        console.print(f"chain {dep.chain_id} at {rpc_url}: TrainingRounds {dep.rounds_address} "
                      f"(node registry included)", highlight=False)
        chain = ChainClient.connect(rpc_url, deployments_dir=settings.deployments_dir, repo_root=REPO_ROOT, account=admin)
        store = FilesystemStore(settings.data_dir / "blobs", max_bytes=settings.max_blob_bytes)
        # The nodes start before the API (they wait for it): forked ones need a parent without threads.
        env = env_with_repo()
        env["FEDCHAIN_DEPLOYMENTS_DIR"] = str(settings.deployments_dir)
        spawn = _spawn_mode(getattr(args, "spawn", "auto"), console)
        if spawn == "fork":
            with console.status("warming up the node code once (torch, web3, a first training step)…"):
                threads = launch.warm_up(task, num_shards=n, seed=args.seed)
        for i in range(1, n + 1):
            hostile = i > n - byzantine
            cmd = node_command(rpc_url=rpc_url, api_url=api_url, dev_index=i, shard=i - 1, num_shards=n,
                               task=args.task, rounds=rounds, data_seed=args.seed,
                               attack=attack if hostile else None, attack_params=attack_params if hostile else None,
                               crash_at=crashes.get(i), ready_file=ready_file(workdir, i))
            log_path = workdir / "logs" / f"node-{i}.log"
            if spawn == "fork":
                procs.append(launch.fork_node(cmd[3:], log_path=log_path, env=env, cwd=Path.cwd(),
                                              close_fds=(held.fd,)))
            else:
                procs.append(subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env, cwd=Path.cwd()))
        console.print(f"started {n} node processes ({'forked from this warmed-up process' if spawn == 'fork' else 'python -m node'}; "
                      f"logs in {workdir / 'logs'})", highlight=False)
        if spawn == "fork":
            import torch

            torch.set_num_threads(threads)  # this process's own training (the comparison) uses every core
        api = start_api(settings, chain, store, signer=admin)
        console.print(f"aggregator API at {api_url} (OpenAPI docs at {api_url}/docs)")
        waited = wait_for_nodes(procs, [ready_file(workdir, i) for i in range(1, n + 1)], workdir / "logs",
                                timeout=getattr(args, "ready_timeout", 600.0), console=console)
        console.print(f"{n} nodes ready after {waited:.1f} s; round 1 opens now, so its deadline is not spent "
                      f"on start-up", highlight=False)
        if byzantine:
            console.print(f"[red]nodes {n - byzantine + 1}..{n} are hostile[/]: attack {attack} "
                          f"({', '.join(attack_params)})", highlight=False)
        strategy = getattr(args, "strategy", None) or "fedavg"
        agg_args = argparse.Namespace(task=args.task, strategy=strategy, strategy_params=strategy_params,
                                      strategy_param=list(getattr(args, "strategy_param", None) or []),
                                      seed=args.seed, model_seed=args.seed,
                                      **{k: getattr(args, k) for k in SECURE_OPTIONS + ROUND_OPTIONS
                                         if hasattr(args, k)})
        agg, task = build_aggregator(agg_args, settings, chain, store, api, log=lambda m: None)
        _check_strategy(agg, strategy, strategy_params)
        summaries: list[Any] = []
        name, unit, lower = metric_label(args.task, task.primary_metric)
        secure = getattr(args, "mode", "transparent") == "secure"
        how = ("clips, noises and masks its update (secure aggregation: nobody can read it), uploads it and commits "
               "its hash on-chain; once the commit phase is sealed the survivors post unmasking shares, and the "
               "aggregator unmasks only the sum, merges it" if secure else
               f"uploads the update and commits its hash on-chain; the aggregator merges ({strategy})")
        console.print(f"each round: every node trains the global model on its own shard, {how} and scores the new "
                      f"model on a held-out set: val {name}" + (f" in {unit}" if unit else "")
                      + f", {'lower' if lower else 'higher'} is better", highlight=False)

        def table() -> Any:
            t = round_table(summaries, task.primary_metric)
            t.columns[-1].header = f"val {name}" + (f" ({unit})" if unit else "")
            return t

        with Live(table(), console=console, refresh_per_second=4, transient=False) as live:
            def on_round(summary: Any) -> None:
                summaries.append(summary)
                live.update(table())

            def on_wait(rid: int, got: int, want: int, left: float) -> None:
                live.update(Group(table(),
                                  Text(f"round {rid}: {got}/{want} nodes committed, deadline in {left:.0f} s",
                                       style="dim")))

            agg.on_wait = on_wait

            agg.run(rounds=rounds, min_updates=min_updates, round_seconds=args.round_seconds, on_round=on_round)
        if not console.is_terminal:
            console.line()  # rich's Live leaves its last line open on a file or pipe
        api.indexer.sync()
        eps = [s.epsilon for s in summaries if s.epsilon is not None]
        if eps:
            console.print(f"privacy: ε = {eps[-1]:.4g} at δ = {summaries[-1].delta:g} after {len(eps)} secure round(s) "
                          f"(user level, per node; GET {api_url}/privacy has the accountant state). With "
                          f"{n} nodes this ε is large: docs/privacy.md, 'Small cohorts'", highlight=False)
        console.print()
        comparison = None
        if not getattr(args, "no_compare", False):
            comparison = compare_with_baselines(task, args.task, summaries, nodes=n, rounds=rounds, seed=args.seed,
                                                console=console)
        summary = {
            "api_url": api_url, "rpc_url": rpc_url, "chain_id": dep.chain_id,
            "contracts": {"NodeRegistry": dep.registry_address, "TrainingRounds": dep.rounds_address},
            "task": args.task, "nodes": n, "min_updates": min_updates,
            "strategy": {"name": getattr(args, "strategy", None) or "fedavg", "params": strategy_params},
            "byzantine": byzantine, "attack": ({"name": attack, "params": attack_params} if attack else None),
            "rounds": [s.to_json() for s in summaries],
            "comparison": comparison,
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2))
            console.print(f"summary written to {args.json}")
        verify = (f"fedchain verify --round {len(summaries)} --rpc-url {rpc_url} --api-url {api_url} "
                  f"--deployments-dir {settings.deployments_dir} --dev-account 1")
        rounds_cmd = f"fedchain rounds --api-url {api_url}"
        if not args.serve:
            console.print(f"next: `fedchain demo --serve` keeps the chain, the API and the dashboard up; then "
                          f"`{verify}`, `{rounds_cmd}`, and open the dashboard at {api_url}/ui", highlight=False,
                          soft_wrap=True)
        else:
            console.print(f"next: `{verify}` | `{rounds_cmd}` | dashboard: {api_url}/ui", highlight=False,
                          soft_wrap=True)
            console.print(f"API: {api_url} (OpenAPI docs at {api_url}/docs); Ctrl-C to stop", highlight=False)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:  # the normal way to stop serving
                console.print("stopping")
        return 0
    finally:
        stop_processes(procs)
        if api is not None:
            api.stop()
        stop_process(anvil)
        held.release()


def crash_plan(args: argparse.Namespace, n: int) -> dict[int, str]:
    """``--crash-at NODE=STAGE@ROUND`` (repeatable) as {node number: STAGE@ROUND}; ConfigError if bad."""
    from fedchain.errors import ConfigError
    from node.participant import parse_crash_at

    out: dict[int, str] = {}
    for item in getattr(args, "crash_at", None) or []:
        node, _, spec = item.partition("=")
        if not node.isdigit() or not 1 <= int(node) <= n:
            raise ConfigError(f"--crash-at {item!r}: NODE must be a node number 1..{n}",
                              hint="e.g. --crash-at 3=after-commit@2")
        parse_crash_at(spec)
        out[int(node)] = spec
    return out


def check_counts(args: argparse.Namespace) -> None:
    """--nodes/--rounds/--min-updates make sense together: refused before anything starts."""
    from fedchain.errors import ConfigError

    n, rounds = int(args.nodes), int(args.rounds)
    if n < 1 or rounds < 1:
        raise ConfigError(f"--nodes and --rounds must be at least 1 (got --nodes {n} --rounds {rounds})",
                          hint="e.g. fedchain demo --nodes 3 --rounds 5")
    if args.min_updates is not None and not 1 <= args.min_updates <= n:
        raise ConfigError(f"--min-updates must be in 1..{n} (the number of nodes), got {args.min_updates}")
    from fedchain.aggregator.config import close_window_problem

    window, cutoff = int(getattr(args, "close_window", 0) or 0), int(getattr(args, "relay_cutoff", 5))
    problem = close_window_problem(window, cutoff)
    if problem:
        raise ConfigError(problem, hint=f"e.g. --close-window {window} --relay-cutoff {max(0, window - 1)}")


#: How each built-in task's primary metric reads to a person.
METRIC_UNITS = {"options-iv": ("RMSE", "vol points", "lower is better"),
                "digits": ("accuracy", "", "higher is better")}


def metric_label(task_spec: str, metric: str) -> tuple[str, str, bool]:
    """(name, unit, lower_is_better) of a task's primary metric."""
    name, unit, better = METRIC_UNITS.get(task_spec, (metric, "", ""))
    if task_spec not in METRIC_UNITS:
        better = "higher is better" if metric in ("accuracy", "acc", "f1", "auc") else "lower is better"
    return name, unit, better.startswith("lower")


def compare_with_baselines(task: Any, task_spec: str, summaries: list[Any], *, nodes: int, rounds: int, seed: int,
                           console: Console) -> dict[str, Any] | None:
    """The federated model against each node's local-only model and the centralised reference, all on
    the task's held-out set. Same budget as the federation: each node's local-only model trains
    ``rounds x epochs`` on that node's own shard (the steps it spent federating); the centralised one
    trains as long on all the shards pooled. Same genesis weights, batch size and learning rate."""
    from rich.table import Table

    from fedchain.codec import load_arrays_into, state_dict_to_arrays
    from fedchain.tasks.base import NodeData, derive_seed
    from fedchain.tasks.baseline import _cat

    metric = task.primary_metric
    final = next((s for s in reversed(summaries) if s.status == "finalized" and metric in s.metrics), None)
    if final is None:
        console.print("no round was finalized, so there is no federated model to compare", highlight=False)
        return None
    params = task.resolve_params(None)
    training = task.default_training()
    epochs, batch, lr = int(training["epochs"]), int(training["batch_size"]), float(training["lr"])
    name, unit, lower = metric_label(task_spec, metric)
    units = f" ({unit})" if unit else ""
    data = [task.node_data(i, nodes, seed, params) for i in range(nodes)]
    init = state_dict_to_arrays(task.build_model(params, seed))

    def trained(d: Any, tag: str) -> float:
        model = task.build_model(params, seed)
        load_arrays_into(model, init)
        task.train(model, d, epochs=rounds * epochs, batch_size=batch, lr=lr, seed=derive_seed(seed, *tag))
        return float(task.evaluate(model, None, seed=seed, params=params)[metric])

    local: list[dict[str, Any]] = []
    with console.status(f"training the references: {nodes} local-only models and one centralised, "
                        f"{rounds * epochs} epochs each…") as status:
        for i, d in enumerate(data):
            status.update(f"training the references: local-only model of node {i + 1}/{nodes} "
                          f"({rounds * epochs} epochs on its {len(d)} samples)…")
            local.append({"node": i + 1, "venue": d.meta.get("venue", f"shard {i}"), "samples": len(d),
                          metric: trained(d, ("local", i))})
        status.update(f"training the references: centralised model ({rounds * epochs} epochs on all "
                      f"{sum(len(d) for d in data)} samples pooled)…")
        pooled = NodeData(_cat([d.x for d in data]), _cat([d.y for d in data]), {"pooled": nodes})
        central = trained(pooled, ("central",))
    fed = float(final.metrics[metric])

    def verdict(other: float) -> str:
        if other == fed:
            return "same"
        better = fed < other if lower else fed > other
        if not better and lower and other and fed / other >= 2:
            return f"federated {fed / other:.1f}x its {name}"
        pct = abs(fed - other) / abs(other) * 100 if other else float("inf")
        return f"federated {pct:.0f}% {'better' if better else 'worse'}"

    t = Table(title=f"held-out {name}{units}, {lower and 'lower' or 'higher'} is better: after {final.round} "
                    f"round(s), same training budget for every model")
    t.add_column("model")
    t.add_column("trained on", justify="right")
    t.add_column(name, justify="right")
    t.add_column("vs federated")
    t.add_row("[bold]federated (this run)[/]", f"{nodes} nodes' data, never pooled", f"[bold]{fed:.3f}[/]", "")
    for item in local:
        t.add_row(f"local-only, node {item['node']} ({item['venue']})", f"{item['samples']} samples",
                  f"{item[metric]:.3f}", verdict(item[metric]))
    t.add_row("centralised (all data pooled)", f"{sum(len(d) for d in data)} samples", f"{central:.3f}",
              verdict(central))
    console.print(t)
    beaten = sum(1 for item in local if (fed < item[metric] if lower else fed > item[metric]))
    median = statistics.median(item[metric] for item in local)
    console.print(f"after {final.round} round(s) the federated model ({fed:.3f}{' ' + unit if unit else ''}) beats "
                  f"{beaten} of {nodes} local-only models (median {median:.3f}) without anyone sharing data; the "
                  f"centralised model needs all the data in one place"
                  + ("; with 100 rounds (`fedchain baseline`) federated reaches 0.75 vs 0.85 centralised and 2.58 "
                     "median local-only (docs/results.md)" if task_spec == "options-iv" else ""),
                  highlight=False)
    return {"metric": metric, "unit": unit, "federated": fed, "round": final.round, "centralised": central,
            "median_local_only": median, "local_only": local, "epochs_per_model": rounds * epochs}


def _strategy_params(args: argparse.Namespace) -> dict[str, Any]:
    """``--strategy-param KEY=VALUE`` pairs, checked against the strategy now (ConfigError otherwise)."""
    from fedchain.attacks import parse_params
    from fedchain.strategy import get_strategy

    params = parse_params(getattr(args, "strategy_param", None) or [], what="strategy")
    get_strategy(getattr(args, "strategy", None) or "fedavg", params)
    return params


def _check_strategy(agg: Any, name: str, params: dict[str, Any]) -> None:
    """The aggregator runs the strategy and parameters asked for (never silently other ones)."""
    from fedchain.errors import ConfigError
    from fedchain.strategy import get_strategy

    want = {"name": name, "params": get_strategy(name, params).params}
    got = getattr(agg, "strategy", want)
    if isinstance(got, dict) and (got.get("name") != want["name"] or (got.get("params") or {}) != want["params"]):
        raise ConfigError(f"the aggregator was built with strategy {got} instead of {want}",
                          hint="fedchain.aggregator.factory.build_aggregator must pass args.strategy_params")
