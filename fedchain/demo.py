"""``fedchain demo``: a whole federation on this machine.

It starts its own anvil, deploys the contracts (genesis model from the task, dev accounts 1..N
admitted as nodes), starts the aggregator service (real uvicorn) and N node processes, runs R
rounds, and prints a per-round table. Logs go to ``<workdir>/logs``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.console import Group
from rich.live import Live
from rich.text import Text

from fedchain.chain.accounts import dev_account
from fedchain.devchain import env_with_repo, free_port, start_anvil, stop_process
from fedchain.settings import REPO_ROOT, Settings


def node_command(*, rpc_url: str, api_url: str, dev_index: int, shard: int, num_shards: int, task: str,
                 rounds: int | None, data_seed: int = 0, attack: str | None = None,
                 attack_params: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url, "--dev-account", str(dev_index),
           "--shard", str(shard), "--num-shards", str(num_shards), "--task", task, "--data-seed", str(data_seed)]
    if rounds is not None:
        cmd += ["--rounds", str(rounds)]
    if attack:
        cmd += ["--attack", attack]
        for pair in attack_params or []:
            cmd += ["--attack-param", pair]
    return cmd


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

    n, rounds = args.nodes, args.rounds
    if n < 1 or rounds < 1:
        from fedchain.errors import ConfigError

        raise ConfigError("--nodes and --rounds must be at least 1")
    min_updates = args.min_updates or max(1, n - 1)
    workdir: Path = args.workdir
    byzantine, attack, attack_params = hostile_plan(args, n, workdir)
    strategy_params = _strategy_params(args)
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
                         grace_period=5, genesis_hash=genesis, admit=[dev_account(i).address for i in range(1, n + 1)],
                         log=lambda m: None)
        console.print(f"chain {dep.chain_id} at {rpc_url}: TrainingRounds {dep.rounds_address} "
                      f"(node registry included)", highlight=False)
        chain = ChainClient.connect(rpc_url, deployments_dir=settings.deployments_dir, repo_root=REPO_ROOT, account=admin)
        store = FilesystemStore(settings.data_dir / "blobs", max_bytes=settings.max_blob_bytes)
        api = start_api(settings, chain, store, signer=admin)
        console.print(f"aggregator API at {api_url} (OpenAPI docs at {api_url}/docs)")
        env = env_with_repo()
        env["FEDCHAIN_DEPLOYMENTS_DIR"] = str(settings.deployments_dir)
        for i in range(1, n + 1):
            log = open(workdir / "logs" / f"node-{i}.log", "wb")
            hostile = i > n - byzantine
            procs.append(subprocess.Popen(
                node_command(rpc_url=rpc_url, api_url=api_url, dev_index=i, shard=i - 1, num_shards=n,
                             task=args.task, rounds=rounds, data_seed=args.seed,
                             attack=attack if hostile else None, attack_params=attack_params if hostile else None),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=Path.cwd(),
            ))
        console.print(f"started {n} node processes (logs in {workdir / 'logs'})")
        if byzantine:
            console.print(f"[red]nodes {n - byzantine + 1}..{n} are hostile[/]: attack {attack} "
                          f"({', '.join(attack_params)})", highlight=False)
        strategy = getattr(args, "strategy", None) or "fedavg"
        agg_args = argparse.Namespace(task=args.task, strategy=strategy, strategy_params=strategy_params,
                                      strategy_param=list(getattr(args, "strategy_param", None) or []),
                                      seed=args.seed, model_seed=args.seed)
        agg, task = build_aggregator(agg_args, settings, chain, store, api, log=lambda m: None)
        _check_strategy(agg, strategy, strategy_params)
        summaries: list[Any] = []
        with Live(round_table(summaries, task.primary_metric), console=console, refresh_per_second=4,
                  transient=False) as live:
            def on_round(summary: Any) -> None:
                summaries.append(summary)
                live.update(round_table(summaries, task.primary_metric))

            def on_wait(rid: int, got: int, want: int, left: float) -> None:
                live.update(Group(round_table(summaries, task.primary_metric),
                                  Text(f"round {rid}: {got}/{want} nodes committed, deadline in {left:.0f} s",
                                       style="dim")))

            agg.on_wait = on_wait

            agg.run(rounds=rounds, min_updates=min_updates, round_seconds=args.round_seconds, on_round=on_round)
        api.indexer.sync()
        console.print()
        summary = {
            "api_url": api_url, "rpc_url": rpc_url, "chain_id": dep.chain_id,
            "contracts": {"NodeRegistry": dep.registry_address, "TrainingRounds": dep.rounds_address},
            "task": args.task, "nodes": n, "min_updates": min_updates,
            "strategy": {"name": getattr(args, "strategy", None) or "fedavg", "params": strategy_params},
            "byzantine": byzantine, "attack": ({"name": attack, "params": attack_params} if attack else None),
            "rounds": [s.to_json() for s in summaries],
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2))
            console.print(f"summary written to {args.json}")
        if not args.serve:
            console.print(f"API: {api_url} (stopped with the demo; add --serve to keep the chain and the API up)")
        else:
            console.print(f"API: {api_url}  (try: curl {api_url}/rounds, or fedchain rounds --api-url {api_url})")
            console.print(f"check a round with: fedchain verify --round 1 --rpc-url {rpc_url} --api-url {api_url} "
                          f"--deployments-dir {settings.deployments_dir} --dev-account 1")
            console.print("Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:  # the normal way to stop serving
                console.print("stopping")
        return 0
    finally:
        for p in procs:
            stop_process(p)
        if api is not None:
            api.stop()
        stop_process(anvil)


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
