"""The ``fedchain`` command: chain, deploy, admit, aggregator, db, node, rounds, verify, demo, baseline.

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

from fedchain.cliutil import (
    HelpFormatter, add_close_window_argument, add_secure_arguments, api_help, non_negative_float, non_negative_int, positive_float, positive_int, resolve_api_url, resolve_rpc_url, rpc_help,
)
from fedchain.errors import ConfigError, FedchainError
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
    """Settings from FEDCHAIN_* overlaid with the flags; a URL no flag or variable names comes from
    the deployment file (``rpc_url``, ``api_url``), else the defaults (see :mod:`fedchain.cliutil`)."""
    s = Settings()
    updates: dict[str, Any] = {}
    for name in ("data_dir", "deployments_dir"):
        value = getattr(args, name, None)
        if value is not None:
            updates[name] = value
    deployments_dir = updates.get("deployments_dir", s.deployments_dir)
    if hasattr(args, "rpc_url"):
        updates["rpc_url"] = resolve_rpc_url(args.rpc_url, deployments_dir)
    if getattr(args, "port", None) is not None and hasattr(args, "host"):  # the aggregator: serves its own API
        updates["api_port"] = args.port
        updates["api_host"] = args.host
        updates["api_url"] = args.api_url or f"http://{args.host}:{args.port}"
    elif hasattr(args, "api_url"):
        updates["api_url"] = resolve_api_url(args.api_url, deployments_dir)
    return s.model_copy(update=updates)


# --------------------------------------------------------------------------------------------
# chain
def cmd_chain(args: argparse.Namespace) -> int:
    """anvil in the foreground. Ctrl-C, SIGTERM and SIGHUP stop it; anvil also gets SIGTERM if this
    process dies any other way (Linux parent-death signal), so it is never left orphaned."""
    from fedchain.chain.accounts import dev_account
    from fedchain.devchain import anvil_command, die_with_parent, port_open, stop_process

    if port_open(args.host, args.port):
        raise FedchainError(f"port {args.port} is already in use",
                            hint="a chain may already be running there; or pass another --port")
    url = f"http://{args.host}:{args.port}"
    console.print(f"[bold]fedchain chain[/]: anvil on {url} (chain id 31337, Ctrl-C to stop)", highlight=False)
    for i in range(min(args.accounts, 6)):
        role = "admin + aggregator" if i == 0 else f"node {i}"
        console.print(f"  dev account {i}: {dev_account(i).address}  ({role})", highlight=False)
    if args.port != 8545 or args.host != "127.0.0.1":
        console.print(f"  next: fedchain deploy --rpc-url {url} --task options-iv --admit-dev 3 "
                      f"(later commands read the URL from deployments/31337.json)", highlight=False)
    proc = subprocess.Popen(anvil_command(args.port, args.host, args.accounts, args.block_time, quiet=not args.verbose),
                            preexec_fn=die_with_parent)
    previous = signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:  # SIGTERM arrives as SystemExit(143) from main's handler: stop anvil with us
        signal.signal(signal.SIGHUP, previous)
        stop_process(proc, timeout=10)


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
    key = b""
    if getattr(args, "public_key", None):
        text = args.public_key[2:] if args.public_key.startswith("0x") else args.public_key
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        from fedchain.secure.keys import is_valid_public_key

        if not is_valid_public_key(key):
            raise ConfigError(f"--public-key {args.public_key[:20]} is not a valid X25519 public key (32 bytes hex)",
                              hint="copy it from `fedchain node --show-public-key`")
        if len(args.addresses) != 1 or args.remove:
            raise ConfigError("--public-key admits exactly one ADDRESS", hint="run one `fedchain admit` per node")
    for address in args.addresses:
        tx = chain.remove_node(address) if args.remove else chain.admit_node(address, key)
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
    """``--strategy-param`` pairs as a dict (see :func:`fedchain.cliutil.parse_key_values`)."""
    from fedchain.cliutil import parse_key_values

    return parse_key_values(pairs, option="--strategy-param")


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
    from fedchain.aggregator import lock
    from fedchain.aggregator.server import start_api
    from fedchain.chain.client import ChainClient
    from fedchain.cliutil import record_api_url
    from fedchain.store import store_from_settings

    s = _settings(args)
    chain = ChainClient.connect(s.rpc_url, deployments_dir=s.deployments_dir, repo_root=REPO_ROOT,
                                account=_account(args, default_dev=_dev_default(s.rpc_url)))
    # One aggregator per data folder (its blob store and index), for the process's whole life.
    held = lock.data_dir_lock(s.data_dir, api_url=s.api_url)
    api = None
    loop_lock = None
    try:
        if args.rounds:
            # One round loop per deployment while it runs (a second would open rounds under it);
            # taken before this one serves or records anything.
            loop_lock = lock.contract_lock(chain_id=chain.chain_id, contract=chain.rounds_address,
                                           deploy_block_hash=chain.block_hash(chain.deploy_block), api_url=s.api_url,
                                           data_dir=s.data_dir, db_url=s.resolved_db_url())
        store = store_from_settings(s)  # FEDCHAIN_BLOB_URL (s3://...), else data_dir/blobs
        api = start_api(s, chain, store, signer=chain.account)
        if record_api_url(s.deployments_dir, chain.chain_id, chain.rounds_address, s.api_url):
            console.print(f"API URL recorded in {s.deployments_dir}/{chain.chain_id}.json (nodes, rounds and verify "
                          f"on this machine find it there)", highlight=False)
        console.print(f"API serving on {api.url} (dashboard at {api.url}/ui, docs at {api.url}/docs)", highlight=False)
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
        if loop_lock is not None:
            loop_lock.release()  # rounds done: another aggregator may take over the deployment
            loop_lock = None
        api.indexer.sync()  # the loop only asked for syncs: the table must show its last round
        console.print(_history_table(api, summaries, task.primary_metric))
        if args.exit_when_done:
            return 0
        console.print(f"rounds done; API and dashboard still serving on {api.url} (Ctrl-C to stop)", highlight=False)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        if loop_lock is not None:
            loop_lock.release()
        if api is not None:
            api.stop()
        held.release()


def _history_table(api: Any, summaries: list[Any], metric: str) -> Table:
    """The table `fedchain rounds` prints (from the API's /rounds), so both show the same rows;
    the loop's own summaries if the API cannot be read."""
    from fedchain.apiclient import ApiClient

    try:
        api.indexer.sync()
        items = ApiClient(api.url, retry_seconds=2, log=lambda m: None).get_json("/rounds", limit=500, offset=0)["items"]
    except Exception:  # noqa: BLE001 - the summaries are the same facts, seen from the loop
        return round_table(summaries, metric)
    return round_table(api_round_rows(items), metric)


def api_round_rows(items: list[dict[str, Any]]) -> list[Any]:
    """``GET /rounds`` items (any order) as rows for :func:`fedchain.console.round_table`, oldest first."""
    from types import SimpleNamespace

    rows = []
    for it in sorted(items, key=lambda it: int(it["round_id"])):
        is_open = it.get("status") == "open"
        commits, accepted = int(it.get("commit_count") or 0), int(it.get("accepted_count") or 0)
        gas: dict[str, int] = {}
        if it.get("open_gas_used") is not None:
            gas["open"] = int(it["open_gas_used"])
        if it.get("close_gas_used") is not None:
            gas["finalize" if it.get("status") == "finalized" else "expire"] = int(it["close_gas_used"])
        rows.append(SimpleNamespace(
            round=int(it["round_id"]), status=it.get("status", "?"),
            accepted=f"{commits} committed" if is_open else accepted,
            rejected="-" if is_open else max(0, commits - accepted),
            global_model_hash=it.get("global_model_hash"), gas=gas, metrics=dict(it.get("metrics") or {}),
        ))
    return rows


def _table_metric(items: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for it in items:
        keys += [k for k, v in (it.get("metrics") or {}).items() if isinstance(v, (int, float)) and k not in keys]
    for preferred in ("rmse", "accuracy", "loss"):
        if preferred in keys:
            return preferred
    return keys[0] if keys else "rmse"


# --------------------------------------------------------------------------------------------
# db
def cmd_db(args: argparse.Namespace) -> int:
    """The index database's schema revision (``current``), or bring it to head (``upgrade``)."""
    from fedchain.index.indexer import make_engine
    from fedchain.index.migrations import connect, ensure_schema, status

    s = _settings(args)
    engine = make_engine(args.db_url or s.resolved_db_url())
    try:
        if args.action == "upgrade":
            before = ensure_schema(engine)
            if before.state == "head":
                console.print(f"{before.describe()}: nothing to do", highlight=False)
                return 0
            console.print(f"was: {before.describe()}", highlight=False)
        with connect(engine) as conn:
            st = status(conn)
        console.print(st.describe(), highlight=False)
        return 0 if st.state == "head" else 1
    finally:
        engine.dispose()


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
    metric = args.metric or _table_metric(items)
    table = round_table(api_round_rows(items), metric)
    table.caption = f"from {s.api_url}"
    console.print(table)
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
    p = argparse.ArgumentParser(
        prog="fedchain", formatter_class=HelpFormatter,
        description="Auditable federated learning on an EVM chain.",
        epilog="URLs: each command takes --rpc-url/--api-url where it needs them; without a flag it reads "
               "FEDCHAIN_RPC_URL / FEDCHAIN_API_URL, then the rpc_url/api_url recorded in "
               "deployments/<chainId>.json (written by `fedchain deploy` and the aggregator). "
               "`fedchain COMMAND --help` lists a command's options with their defaults.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        sp.set_defaults(fn=fn)
        return sp

    deployments_help = ("folder with the deployment files <chainId>.json (FEDCHAIN_DEPLOYMENTS_DIR; "
                        f"default {s.deployments_dir})")

    c = add("chain", cmd_chain, "run a local anvil chain (from node_modules) in the foreground")
    c.add_argument("--host", default="127.0.0.1", help="address anvil listens on")
    c.add_argument("--port", type=int, default=8545, help="JSON-RPC port (pass `--rpc-url http://HOST:PORT` to deploy)")
    c.add_argument("--accounts", type=positive_int, default=10, help="funded dev accounts (0: admin, 1..: nodes)")
    c.add_argument("--block-time", type=non_negative_float, default=1.0,
                   help="seconds per block; deadlines are judged by chain time, so a dev chain must keep mining "
                        "(0: mine only on each transaction)")
    c.add_argument("--verbose", action="store_true", help="show anvil's own log")

    d = add("deploy", cmd_deploy, "deploy the contracts, set the genesis model, admit nodes")
    d.add_argument("--rpc-url", default=None,
                   help=rpc_help("chain to deploy to (recorded in the deployment file for the other commands)"))
    d.add_argument("--deployments-dir", type=Path, default=None, help="where to write <chainId>.json; " + deployments_help)
    _key_args(d, default_dev=0)
    d.add_argument("--aggregator", default=None, metavar="ADDRESS",
                   help="address granted AGGREGATOR_ROLE (default: the deployer)")
    d.add_argument("--grace-period", type=int, default=60, help="seconds after a deadline before anyone may expire a round")
    d.add_argument("--task", default="options-iv", help="task whose genesis model is set: built-in name or module:attribute")
    d.add_argument("--model-seed", type=int, default=0, help="seed of the genesis model")
    d.add_argument("--admit", nargs="*", default=[], metavar="ADDRESS", help="node addresses to admit")
    d.add_argument("--admit-dev", type=int, default=0, metavar="N", help="admit anvil dev accounts 1..N")

    a = add("admit", cmd_admit, "admit (or --remove) node addresses; needs the registrar key")
    a.add_argument("addresses", nargs="+", metavar="ADDRESS", help="node addresses")
    a.add_argument("--remove", action="store_true", help="remove the nodes instead of admitting them")
    a.add_argument("--public-key", default=None, metavar="HEX",
                   help="the node's X25519 public key for secure rounds (`fedchain node --show-public-key` prints "
                        "it); one ADDRESS only (default: none, the node registers its own at start)")
    a.add_argument("--rpc-url", default=None, help=rpc_help())
    a.add_argument("--deployments-dir", type=Path, default=None, help=deployments_help)
    _key_args(a, default_dev=0)

    k = add("new-key", cmd_new_key, "create a node key in an encrypted keystore file (password from FEDCHAIN_KEYSTORE_PASSWORD)")
    k.add_argument("path", type=Path, help="keystore file to create (never overwritten)")

    g = add("aggregator", cmd_aggregator, "run the aggregator: REST API, dashboard and round loop")
    g.add_argument("--rounds", type=non_negative_int, default=5,
                   help="rounds to run; then the API keeps serving (0: serve the API and the dashboard only)")
    g.add_argument("--min-updates", type=positive_int, default=2, help="quorum: accepted updates a round needs")
    g.add_argument("--round-seconds", type=float, default=120.0, help="deadline of each round, from its opening (chain time)")
    g.add_argument("--task", default="options-iv", help="built-in task name or module:attribute")
    g.add_argument("--strategy", default="fedavg", metavar="NAME",
                   help="merge rule: fedavg, fedprox, fedavgm, fedadam, fedyogi, median, trimmed_mean, krum, "
                        "multi_krum, bulyan, centered_clip (docs/strategies.md); written into each round config")
    g.add_argument("--strategy-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of --strategy (repeatable), VALUE parsed as JSON else taken as a string: "
                        "beta=0.2, f=2, 'pre=[{\"name\": \"clip\", \"c\": 1.0}]'; unknown names are refused")
    g.set_defaults(fn=_with_checked_strategy(cmd_aggregator))
    g.add_argument("--seed", type=int, default=0, help="seed of the round configs (training and evaluation)")
    g.add_argument("--model-seed", type=int, default=0, help="seed of the genesis model (as given to deploy)")
    g.add_argument("--host", default=s.api_host, help="address the API listens on (FEDCHAIN_API_HOST)")
    g.add_argument("--port", type=int, default=s.api_port, help="API port (FEDCHAIN_API_PORT)")
    g.add_argument("--rpc-url", default=None, help=rpc_help())
    g.add_argument("--api-url", default=None,
                   help="public URL of this API, recorded in the deployment file for nodes (default http://HOST:PORT)")
    g.add_argument("--data-dir", type=Path, default=None,
                   help=f"blob store and index; one aggregator per folder (FEDCHAIN_DATA_DIR; default {s.data_dir})")
    g.add_argument("--deployments-dir", type=Path, default=None, help=deployments_help)
    g.add_argument("--exit-when-done", action="store_true", help="stop the API after the last round")
    g.add_argument("--max-samples", type=int, default=None,
                   help="largest sample count (FedAvg weight) a node may declare; the contract enforces it "
                        "(default: 1,000,000; 10,000 in secure mode, where it also sets the fixed-point weight scale)")
    g.add_argument("--relay-cutoff", type=int, default=5,
                   help="seconds before the deadline after which relayed batches stop, so left-out nodes can "
                        "still commit directly")
    add_close_window_argument(g)
    g.add_argument("--public-updates", action="store_true",
                   help="after a round closes, serve its update blobs to anyone (default: members and auditors)")
    g.add_argument("--censor", nargs="*", default=[], metavar="ADDRESS",
                   help="misbehave for tests: never relay these nodes' commitments")
    g.add_argument("--lr-schedule", default="constant", metavar="SPEC",
                   help="local learning rate per round, written into each round's config: constant, "
                        "cosine:ROUNDS[:MIN_LR] or step:EVERY:GAMMA")
    add_secure_arguments(g)
    _key_args(g, default_dev=0)

    db = add("db", cmd_db, "the index database's schema: `current` shows its revision (exit 1 unless at head), "
                           "`upgrade` migrates it to head (the aggregator also does at start)")
    db.add_argument("action", choices=["current", "upgrade"], help="what to do")
    db.add_argument("--db-url", default=None,
                    help="SQLAlchemy URL of the index (FEDCHAIN_DB_URL; default: SQLite in the data folder)")
    db.add_argument("--data-dir", type=Path, default=None,
                    help=f"the aggregator's data folder, for the default SQLite index (FEDCHAIN_DATA_DIR; "
                         f"default {s.data_dir})")

    from node.args import build_parser as node_parser

    n = add("node", cmd_node, "run a participant node")
    node_parser(n)

    r = add("rounds", cmd_rounds, "print the round history from the API (the aggregator's table)")
    r.add_argument("--api-url", default=None, help=api_help())
    r.add_argument("--deployments-dir", type=Path, default=None, help="where to look for a recorded api_url; " + deployments_help)
    r.add_argument("--limit", type=positive_int, default=50, help="newest rounds to show")
    r.add_argument("--metric", default=None, help="metric column (default: rmse, accuracy or loss, whichever the reports have)")
    r.add_argument("--json", action="store_true", help="print the API's JSON items instead of the table")

    v = add("verify", cmd_verify, "recompute a round from public data and compare with the chain")
    v.add_argument("--round", type=positive_int, required=True, help="round id to recompute")
    v.add_argument("--rpc-url", default=None, help=rpc_help("your own chain RPC"))
    v.add_argument("--api-url", default=None, help=api_help("the aggregator API that serves the blobs"))
    v.add_argument("--deployments-dir", type=Path, default=None,
                   help="folder with your own deployments/<chainId>.json (verify never asks the API for addresses; "
                        f"FEDCHAIN_DEPLOYMENTS_DIR; default {s.deployments_dir})")
    v.add_argument("--contract", default=None, metavar="ADDRESS",
                   help="the TrainingRounds address to audit, instead of a deployment file")
    v.add_argument("--receipt", type=Path, nargs="*", default=[], metavar="FILE",
                   help="upload receipts a node kept (.fedchain/receipts/<address>/round-N.json): contest a "
                        "missing_upload claim")
    _key_args(v)

    m = add("demo", cmd_demo, "all in one: anvil, deploy, aggregator, N node processes, R rounds, then the comparison "
                              "with local-only and centralised training")
    m.add_argument("--nodes", type=positive_int, default=5, help="node processes (each gets one shard of the data)")
    m.add_argument("--rounds", type=positive_int, default=5, help="rounds to run")
    m.add_argument("--task", default="options-iv", help="built-in task name or module:attribute (docs/tasks.md)")
    m.add_argument("--min-updates", type=positive_int, default=None, help="quorum (default: all but one node, at least 1)")
    m.add_argument("--round-seconds", type=float, default=120.0, help="deadline of each round (rounds close as soon as "
                                                                      "every node has committed)")
    m.add_argument("--spawn", choices=("auto", "fork", "exec"), default="auto",
                   help="how to start the node processes: fork them from this process once it has imported and "
                        "warmed up the node code (fast: each is still a process of its own), or exec "
                        "`python -m node` each (each pays ~3 CPU-s of start-up); auto: fork where possible")
    m.add_argument("--ready-timeout", type=positive_float, default=600.0, metavar="SECONDS",
                   help="how long to wait for every node process to be ready (connected, task and data loaded) "
                        "before round 1 opens; a node that exits meanwhile stops the demo with its log")
    m.add_argument("--seed", type=int, default=0, help="data, genesis model and round seed")
    m.add_argument("--json", type=Path, default=None, metavar="PATH", help="write a JSON summary here")
    m.add_argument("--serve", action="store_true",
                   help="keep the chain, the API and the dashboard up afterwards, until Ctrl-C")
    m.add_argument("--no-compare", action="store_true",
                   help="skip the closing comparison with local-only and centralised models")
    m.add_argument("--port", type=int, default=None, help="API port (default: a free one)")
    m.add_argument("--chain-port", type=int, default=None, help="anvil port (default: a free one)")
    m.add_argument("--workdir", type=Path, default=REPO_ROOT / ".fedchain" / "demo",
                   help="logs, deployment and aggregator data (emptied first; one demo per folder)")
    m.add_argument("--strategy", default="fedavg", help="the aggregator's merge rule (docs/strategies.md)")
    m.add_argument("--relay-cutoff", type=non_negative_int, default=5, metavar="SECONDS",
                   help="seconds before the deadline after which relayed commitments stop (the demo's nodes "
                        "commit directly)")
    add_close_window_argument(m)
    add_secure_arguments(m, noise_default=0.002)
    m.add_argument("--crash-at", action="append", default=[], metavar="NODE=STAGE@ROUND",
                   help="make node NODE (1..N) crash at STAGE of round ROUND, to see a dropout (repeatable); STAGE: "
                        "after-training, after-upload, after-commit, after-unmask-upload (default: no crash)")
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
    b.add_argument("--task", default="options-iv", help="built-in task name or module:attribute")
    b.add_argument("--seed", type=int, default=0, help="data, model and training seed")
    b.add_argument("--nodes", type=positive_int, default=5, help="number of nodes (venues)")
    b.add_argument("--rounds", type=positive_int, default=None, help="federated rounds (default 100)")
    b.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON")
    b.add_argument("--plot", type=Path, default=None, metavar="PNG", help="save a picture (options-iv)")
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
