"""The ``fedchain`` command: chain, deploy, admit, aggregator, node, rounds, verify, demo, baseline.

Every user-facing failure is a :class:`fedchain.errors.FedchainError`: printed as one ``error:``
line (plus a ``hint:`` naming the fix) with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rich.table import Table

from fedchain.errors import FedchainError
from fedchain.settings import REPO_ROOT, Settings

from fedchain.console import console, report_error, round_table  # noqa: F401  (report_error: re-exported)


def _key_args(p: argparse.ArgumentParser, *, default_dev: int | None = None) -> None:
    from node.args import add_key_arguments

    note = f"; default {default_dev} on a local anvil chain" if default_dev is not None else ""
    add_key_arguments(p, dev_default_note=note)


def _account(args: argparse.Namespace, *, default_dev: int | None = None) -> Any:
    from fedchain.chain.accounts import resolve_account

    dev = args.dev_account
    if dev is None and args.keystore is None and args.private_key is None and default_dev is not None:
        dev = default_dev
    return resolve_account(private_key=args.private_key, keystore=args.keystore, dev_index=dev)


def _dev_default(rpc_url: str) -> int | None:
    """Use dev account 0 by default only on a local anvil chain (chain id 31337)."""
    from fedchain.chain.client import connect_web3
    from fedchain.devchain import DEV_CHAIN_ID

    return 0 if connect_web3(rpc_url).eth.chain_id == DEV_CHAIN_ID else None


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings()
    updates: dict[str, Any] = {}
    for name in ("rpc_url", "api_url", "data_dir", "deployments_dir"):
        value = getattr(args, name, None)
        if value is not None:
            updates[name] = value
    if getattr(args, "port", None) is not None and hasattr(args, "host"):
        updates["api_port"] = args.port
        updates["api_host"] = args.host
        if getattr(args, "api_url", None) is None:
            updates["api_url"] = f"http://{args.host}:{args.port}"
    return s.model_copy(update=updates)


# --------------------------------------------------------------------------------------------
# chain
def cmd_chain(args: argparse.Namespace) -> int:
    from fedchain.chain.accounts import dev_account
    from fedchain.devchain import anvil_command, port_open

    if port_open(args.host, args.port):
        raise FedchainError(f"port {args.port} is already in use", hint="a chain may already be running there; or pass --port")
    console.print(f"[bold]fedchain chain[/]: anvil on http://{args.host}:{args.port} (chain id 31337, Ctrl-C to stop)")
    for i in range(min(args.accounts, 6)):
        role = "admin + aggregator" if i == 0 else f"node {i}"
        console.print(f"  dev account {i}: {dev_account(i).address}  ({role})", highlight=False)
    proc = subprocess.Popen(anvil_command(args.port, args.host, args.accounts, args.block_time, quiet=not args.verbose))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
        return 0


# --------------------------------------------------------------------------------------------
# deploy / admit
def cmd_deploy(args: argparse.Namespace) -> int:
    from fedchain.aggregator.service import genesis_model
    from fedchain.chain.accounts import dev_account
    from fedchain.chain.deploy import deploy
    from fedchain.tasks import load_task

    s = _settings(args)
    account = _account(args, default_dev=_dev_default(s.rpc_url))
    task = load_task(args.task)
    _, genesis = genesis_model(task, task.default_params(), args.model_seed)
    admit = list(args.admit or []) + [dev_account(i).address for i in range(1, (args.admit_dev or 0) + 1)]
    console.print(f"deploying to {s.rpc_url} as {account.address}")
    dep = deploy(s.rpc_url, account, repo_root=REPO_ROOT, deployments_dir=s.deployments_dir,
                 aggregator=args.aggregator, grace_period=args.grace_period, genesis_hash=genesis, admit=admit,
                 log=lambda m: console.print("  " + m, highlight=False))
    console.print(f"[green]deployed[/] on chain {dep.chain_id} at block {dep.block}")
    return 0


def cmd_admit(args: argparse.Namespace) -> int:
    from fedchain.chain.client import ChainClient

    s = _settings(args)
    chain = ChainClient.connect(s.rpc_url, deployments_dir=s.deployments_dir, repo_root=REPO_ROOT,
                                account=_account(args, default_dev=_dev_default(s.rpc_url)))
    for address in args.addresses:
        tx = chain.remove_node(address) if args.remove else chain.admit_node(address)
        console.print(f"{'removed' if args.remove else 'admitted'} {address} (gas {tx.gas_used})", highlight=False)
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    from eth_account import Account

    from fedchain.chain.accounts import PASSWORD_ENV, write_keystore

    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise FedchainError(f"set {PASSWORD_ENV} to the password that will encrypt the key",
                            hint=f"export {PASSWORD_ENV}=...; nodes read it from there too")
    if args.path.exists():
        raise FedchainError(f"{args.path} already exists", hint="pick another path; keys are never overwritten")
    account = Account.create()
    write_keystore(account, args.path, password)
    console.print(f"wrote {args.path} (mode 600) for address {account.address}", highlight=False)
    console.print(f"admit it with: fedchain admit {account.address}", highlight=False)
    return 0


# --------------------------------------------------------------------------------------------
# aggregator
def parse_strategy_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["beta=0.2", "start=zero"]`` -> ``{"beta": 0.2, "start": "zero"}``: each VALUE is parsed as
    JSON (numbers, true/false, null, lists, objects) and taken as a plain string otherwise."""
    from fedchain.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = str(pair).partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ConfigError(f"bad --strategy-param {pair!r}: expected KEY=VALUE", hint="e.g. --strategy-param beta=0.2")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _with_checked_strategy(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Check --strategy and --strategy-param before anything connects (one ``error:`` line naming
    the known strategies or parameters otherwise) and hand the parsed ``args.strategy_params`` on."""
    def run(args: argparse.Namespace) -> int:
        from fedchain.strategy import get_strategy

        args.strategy_params = parse_strategy_params(getattr(args, "strategy_param", None))
        get_strategy(args.strategy, args.strategy_params)
        return fn(args)

    return run


def cmd_aggregator(args: argparse.Namespace) -> int:
    from fedchain.aggregator.server import start_api
    from fedchain.chain.client import ChainClient
    from fedchain.store import FilesystemStore

    s = _settings(args)
    chain = ChainClient.connect(s.rpc_url, deployments_dir=s.deployments_dir, repo_root=REPO_ROOT,
                                account=_account(args, default_dev=_dev_default(s.rpc_url)))
    store = FilesystemStore(s.data_dir / "blobs", max_bytes=s.max_blob_bytes)
    api = start_api(s, chain, store, signer=chain.account)
    console.print(f"API serving on {api.url} (docs at {api.url}/docs)")
    try:
        from fedchain.aggregator.factory import build_aggregator

        agg, task = build_aggregator(args, s, chain, store, api,
                                     log=lambda m: console.print(f"[dim]aggregator[/] {m}", highlight=False))
        summaries: list[Any] = []

        def on_round(summary: Any) -> None:
            summaries.append(summary)
            m = summary.metrics.get(task.primary_metric)
            console.print(f"round {summary.round} {summary.status}: {summary.accepted} accepted, "
                          f"{summary.rejected} rejected" + (f", val {task.primary_metric} {m:.4f}" if m is not None else ""),
                          highlight=False)

        with console.status("starting…") as status:
            agg.on_wait = lambda rid, got, want, left: status.update(
                f"round {rid}: {got}/{want} nodes committed, deadline in {left:.0f} s")
            agg.run(rounds=args.rounds, min_updates=args.min_updates, round_seconds=args.round_seconds,
                    on_round=on_round)
        console.print(round_table(summaries, task.primary_metric))
        if args.exit_when_done:
            return 0
        console.print(f"rounds done; API still serving on {api.url} (Ctrl-C to stop)")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        api.stop()


# --------------------------------------------------------------------------------------------
# node
def cmd_node(args: argparse.Namespace) -> int:
    from node.participant import run

    return run(args, console)


# --------------------------------------------------------------------------------------------
# rounds
def cmd_rounds(args: argparse.Namespace) -> int:

    from fedchain.apiclient import ApiClient

    s = _settings(args)
    items = ApiClient(s.api_url, retry_seconds=5, log=lambda m: console.print(m, highlight=False)).get_json(
        "/rounds", limit=args.limit, offset=0)["items"]
    if args.json:
        console.print_json(data=items)
        return 0
    t = Table(title=f"rounds at {s.api_url}")
    for col in ("round", "status", "commits", "accepted", "global model", "report", "metrics"):
        t.add_column(col)
    for it in items:
        shown = {k: v for k, v in (it.get("metrics") or {}).items() if k in ("rmse", "max_abs_err", "loss", "accuracy")}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown.items() if isinstance(v, (int, float)))
        t.add_row(str(it["round_id"]), it["status"], str(it.get("commit_count", "")), str(it.get("accepted_count", "")),
                  (it.get("global_model_hash") or "-")[:18], (it.get("report_hash") or "-")[:18], metrics)
    console.print(t)
    return 0


# --------------------------------------------------------------------------------------------
# verify
def cmd_verify(args: argparse.Namespace) -> int:
    from fedchain.verify import verify_round

    from fedchain.verify import load_receipts

    s = _settings(args)
    reader = None
    if args.keystore is not None or args.private_key is not None or args.dev_account is not None:
        reader = _account(args)
    result = verify_round(args.round, rpc_url=s.rpc_url, api_url=s.api_url, deployments_dir=s.deployments_dir,
                          contract=args.contract, reader=reader, receipts=load_receipts(args.receipt or []),
                          log=lambda m: console.print(m, highlight=False))
    if result.ok:
        console.print(f"[green]round {args.round} verified[/]: recomputed model hash {result.recomputed_model_hash} "
                      f"equals the on-chain hash", highlight=False)
        return 0
    for problem in result.problems:
        console.print(f"[bold red]MISMATCH[/] {problem}", highlight=False)
    return 1


# --------------------------------------------------------------------------------------------
# demo
def cmd_demo(args: argparse.Namespace) -> int:
    from fedchain.demo import run_demo

    return run_demo(args, console)


def cmd_baseline(args: argparse.Namespace) -> int:
    from fedchain.attacks import parse_params
    from fedchain.tasks.baseline import run_baseline

    kwargs: dict[str, Any] = {"seed": args.seed, "nodes": args.nodes, "plot_path": args.plot, "progress": True,
                              "strategy": args.strategy,
                              "strategy_params": parse_params(args.strategy_param, what="strategy"),
                              "attack": args.attack, "attack_params": parse_params(args.attack_param),
                              "byzantine": args.byzantine, "max_samples": args.max_samples,
                              "references": not args.federated_only}
    if args.rounds is not None:
        kwargs["rounds"] = args.rounds
    if args.lr_schedule:
        from fedchain.aggregator.config import parse_schedule

        kwargs["lr_schedule"] = parse_schedule(args.lr_schedule)
    result = run_baseline(args.task, **kwargs)
    metric = result.get("metric", "rmse")
    setup = f"strategy {result['strategy']['name']}"
    if result.get("attack"):
        setup += f", {result['byzantine']} hostile ({result['attack']['name']})"
    t = Table(title=f"{args.task}: seed {args.seed}, {args.nodes} nodes, {result.get('rounds')} rounds, {setup}")
    t.add_column("model")
    t.add_column(metric, justify="right")
    if result.get("centralised"):
        t.add_row("centralised", f"{result['centralised'][metric]:.4f}")
    if result.get("centralised_cosine"):
        t.add_row("centralised (cosine lr decay)", f"{result['centralised_cosine'][metric]:.4f}")
    t.add_row("federated", f"{result['federated'][metric]:.4f}")
    for item in result.get("local_only") or []:
        t.add_row(f"local-only {item.get('venue', item.get('shard'))}", f"{item[metric]:.4f}")
    console.print(t)
    targets = result.get("targets") or {}
    if targets:
        console.print(f"federated / centralised = {targets.get('federated_vs_centralised', float('nan')):.3f}, "
                      f"federated / median local-only = {targets.get('federated_vs_median_local', float('nan')):.3f}, "
                      f"targets met: {targets.get('met')}", highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    if args.plot:
        console.print(f"wrote {args.plot}")
    return 0


# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    s = Settings()
    p = argparse.ArgumentParser(prog="fedchain", description="Auditable federated learning on an EVM chain.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    c = add("chain", cmd_chain, "run a local anvil chain (from node_modules) in the foreground")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8545)
    c.add_argument("--accounts", type=int, default=10)
    c.add_argument("--block-time", type=float, default=1.0,
                   help="seconds per block; deadlines are judged by chain time, so a dev chain must keep mining "
                        "(0: mine only on each transaction)")
    c.add_argument("--verbose", action="store_true", help="show anvil's own log")

    d = add("deploy", cmd_deploy, "deploy the contracts, set the genesis model, admit nodes")
    d.add_argument("--rpc-url", default=None)
    d.add_argument("--deployments-dir", type=Path, default=None)
    _key_args(d, default_dev=0)
    d.add_argument("--aggregator", default=None, help="address granted AGGREGATOR_ROLE (default: the deployer)")
    d.add_argument("--grace-period", type=int, default=60, help="seconds after a deadline before anyone may expire a round")
    d.add_argument("--task", default="options-iv")
    d.add_argument("--model-seed", type=int, default=0, help="seed of the genesis model")
    d.add_argument("--admit", nargs="*", default=[], metavar="ADDRESS", help="node addresses to admit")
    d.add_argument("--admit-dev", type=int, default=0, metavar="N", help="admit anvil dev accounts 1..N")

    a = add("admit", cmd_admit, "admit (or --remove) node addresses; needs the registrar key")
    a.add_argument("addresses", nargs="+")
    a.add_argument("--remove", action="store_true")
    a.add_argument("--rpc-url", default=None)
    a.add_argument("--deployments-dir", type=Path, default=None)
    _key_args(a, default_dev=0)

    k = add("new-key", cmd_new_key, "create a node key in an encrypted keystore file (password from FEDCHAIN_KEYSTORE_PASSWORD)")
    k.add_argument("path", type=Path)

    g = add("aggregator", cmd_aggregator, "run the aggregator: REST API + round loop")
    g.add_argument("--rounds", type=int, default=5)
    g.add_argument("--min-updates", type=int, default=2)
    g.add_argument("--round-seconds", type=float, default=120.0, help="deadline of each round, from its opening")
    g.add_argument("--task", default="options-iv")
    g.add_argument("--strategy", default="fedavg", metavar="NAME",
                   help="merge rule: fedavg, fedprox, fedavgm, fedadam, fedyogi, median, trimmed_mean, krum, "
                        "multi_krum, bulyan, centered_clip (docs/strategies.md); written into each round config")
    g.add_argument("--strategy-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of --strategy (repeatable), VALUE parsed as JSON else taken as a string: "
                        "beta=0.2, f=2, 'pre=[{\"name\": \"clip\", \"c\": 1.0}]'; unknown names are refused")
    g.set_defaults(fn=_with_checked_strategy(cmd_aggregator))
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--model-seed", type=int, default=0)
    g.add_argument("--host", default=s.api_host)
    g.add_argument("--port", type=int, default=s.api_port)
    g.add_argument("--rpc-url", default=None)
    g.add_argument("--api-url", default=None, help="public URL of this API (default http://HOST:PORT)")
    g.add_argument("--data-dir", type=Path, default=None)
    g.add_argument("--deployments-dir", type=Path, default=None)
    g.add_argument("--exit-when-done", action="store_true", help="stop the API after the last round")
    g.add_argument("--max-samples", type=int, default=1_000_000,
                   help="largest sample count (FedAvg weight) a node may declare; the contract enforces it")
    g.add_argument("--relay-cutoff", type=int, default=5,
                   help="seconds before the deadline after which relayed batches stop, so left-out nodes can "
                        "still commit directly")
    g.add_argument("--public-updates", action="store_true",
                   help="after a round closes, serve its update blobs to anyone (default: members and auditors)")
    g.add_argument("--censor", nargs="*", default=[], metavar="ADDRESS",
                   help="misbehave for tests: never relay these nodes' commitments")
    g.add_argument("--lr-schedule", default="constant", metavar="SPEC",
                   help="local learning rate per round, written into each round's config: constant, "
                        "cosine:ROUNDS[:MIN_LR] or step:EVERY:GAMMA")
    _key_args(g, default_dev=0)

    from node.args import build_parser as node_parser

    n = add("node", cmd_node, "run a participant node")
    node_parser(n)

    r = add("rounds", cmd_rounds, "print the round history from the API")
    r.add_argument("--api-url", default=None)
    r.add_argument("--limit", type=int, default=50)
    r.add_argument("--json", action="store_true")

    v = add("verify", cmd_verify, "recompute a round from public data and compare with the chain")
    v.add_argument("--round", type=int, required=True)
    v.add_argument("--rpc-url", default=None)
    v.add_argument("--api-url", default=None)
    v.add_argument("--deployments-dir", type=Path, default=None,
                   help="folder with your own deployments/<chainId>.json (verify never asks the API for addresses)")
    v.add_argument("--contract", default=None, metavar="ADDRESS",
                   help="the TrainingRounds address to audit, instead of a deployment file")
    v.add_argument("--receipt", type=Path, nargs="*", default=[], metavar="FILE",
                   help="upload receipts a node kept (.fedchain/receipts/<address>/round-N.json): contest a "
                        "missing_upload claim")
    _key_args(v)

    m = add("demo", cmd_demo, "all in one: anvil, deploy, aggregator, N node processes, R rounds")
    m.add_argument("--nodes", type=int, default=5)
    m.add_argument("--rounds", type=int, default=5)
    m.add_argument("--task", default="options-iv")
    m.add_argument("--min-updates", type=int, default=None, help="quorum (default: all but one node, at least 1)")
    m.add_argument("--round-seconds", type=float, default=120.0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--json", type=Path, default=None, help="write a JSON summary here")
    m.add_argument("--serve", action="store_true", help="keep the chain and the API up afterwards, until Ctrl-C")
    m.add_argument("--port", type=int, default=None, help="API port (default: a free one)")
    m.add_argument("--chain-port", type=int, default=None, help="anvil port (default: a free one)")
    m.add_argument("--workdir", type=Path, default=REPO_ROOT / ".fedchain" / "demo")
    m.add_argument("--strategy", default="fedavg", help="the aggregator's merge rule")
    m.add_argument("--strategy-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy parameter (repeatable), e.g. beta=0.2")
    m.add_argument("--byzantine", type=int, default=0, metavar="K",
                   help="run the last K of the --nodes processes as hostile nodes (with --attack)")
    m.add_argument("--attack", default=None, metavar="NAME",
                   help="what the hostile nodes do: sign_flip, scaling, noise, data_poison, inflate, alie, ipm, "
                        "min_max, min_sum (docs/robustness.md)")
    m.add_argument("--attack-param", action="append", default=[], metavar="KEY=VALUE",
                   help="an attack parameter for the hostile nodes (repeatable)")

    b = add("baseline", cmd_baseline, "centralised vs local-only vs federated on a task")
    b.add_argument("--task", default="options-iv")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--nodes", type=int, default=5)
    b.add_argument("--rounds", type=int, default=None)
    b.add_argument("--json", type=Path, default=None)
    b.add_argument("--plot", type=Path, default=None)
    b.add_argument("--strategy", default="fedavg", help="aggregation rule (the aggregator's own code)")
    b.add_argument("--strategy-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy parameter (repeatable), e.g. beta=0.2")
    b.add_argument("--attack", default=None, metavar="NAME",
                   help="hostile behaviour of the last --byzantine nodes: sign_flip, scaling, noise, data_poison, "
                        "inflate, alie, ipm, min_max, min_sum (docs/robustness.md)")
    b.add_argument("--attack-param", action="append", default=[], metavar="KEY=VALUE",
                   help="an attack parameter (repeatable), e.g. k=10")
    b.add_argument("--byzantine", type=int, default=0, metavar="K", help="number of hostile nodes (with --attack)")
    b.add_argument("--max-samples", type=int, default=1_000_000,
                   help="cap on a node's declared sample count, as the contract enforces (aggregator default)")
    b.add_argument("--lr-schedule", default=None, metavar="SPEC",
                   help="per-round local learning rate: constant, cosine:ROUNDS[:MIN_LR] or step:EVERY:GAMMA")
    b.add_argument("--federated-only", action="store_true",
                   help="skip the centralised and local-only runs")
    return p


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except FedchainError as exc:
        return report_error(exc)
    except Exception as exc:  # a bug: still one clear line, the traceback only on request
        if os.environ.get("FEDCHAIN_DEBUG"):
            raise
        return report_error(FedchainError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a fedchain bug; re-run with FEDCHAIN_DEBUG=1 for the traceback and report it",
        ))


if __name__ == "__main__":
    raise SystemExit(main())
