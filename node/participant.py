"""The participant node process.

It needs three things: the chain's RPC URL, the aggregator API URL, and its key (a keystore file
with the password in ``FEDCHAIN_KEYSTORE_PASSWORD``, or a dev-account index on a local anvil).
Each round it downloads the base model and the round config by hash and checks both hashes against
the chain, trains locally (a progress bar shows it), uploads the update with an EIP-712 signed
request, then commits the update's hash on-chain with ``submitUpdate`` from its own address.
Its data never leaves the process.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedchain.auth import sign_upload
from fedchain.chain.accounts import resolve_account
from fedchain.chain.client import ChainClient, connect_local_or_api
from fedchain.chain.deployment import Deployment
from fedchain.chain.types import RoundInfo, RoundStatus
from fedchain.codec import decode_json, decode_tensors, encode_tensors, load_arrays_into, state_dict_to_arrays
from fedchain.errors import ConfigError, ContractRevert, FedchainError, HashMismatch
from fedchain.hashing import commitment
from fedchain.settings import REPO_ROOT, Settings
from fedchain.tasks import load_task
from node.args import build_parser
from node.retry import TransientHTTPError, with_retry

MAX_CONFIG_BYTES = 1024 * 1024


class ApiClient:
    """The few aggregator API calls a node makes, each checked and retried."""

    def __init__(self, base_url: str, *, max_blob_bytes: int, log: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0)
        self.max_blob_bytes = max_blob_bytes
        self.log = log

    def _get(self, path: str) -> httpx.Response:
        def once() -> httpx.Response:
            r = self.http.get(path)
            if r.status_code >= 500 or r.status_code == 429:
                raise TransientHTTPError(f"HTTP {r.status_code} from {self.base_url}{path}")
            return r

        return with_retry(once, f"GET {self.base_url}{path}", log=self.log)

    def blob(self, h: str, *, max_bytes: int) -> bytes:
        r = self._get(f"/blobs/{h}")
        if r.status_code != 200:
            raise FedchainError(f"the API has no blob {h} (HTTP {r.status_code})")
        if len(r.content) > max_bytes:
            raise FedchainError(f"blob {h} is {len(r.content)} bytes, over the {max_bytes}-byte limit")
        if commitment(r.content) != h:
            raise HashMismatch(f"the API served bytes for {h} that hash to {commitment(r.content)}")
        return r.content

    def deployment(self) -> Deployment:
        r = self._get("/deployment")
        if r.status_code != 200:
            raise ConfigError(f"{self.base_url}/deployment answered HTTP {r.status_code}",
                              hint="is --api-url the fedchain aggregator?")
        return Deployment.from_json(r.json())

    def upload(self, round_id: int, blob_hash: str, data: bytes, signature: str) -> httpx.Response:
        def once() -> httpx.Response:
            r = self.http.put(
                f"/rounds/{round_id}/updates/{blob_hash}", content=data,
                headers={"X-Fedchain-Signature": signature, "Content-Type": "application/octet-stream"},
            )
            if r.status_code >= 500 or r.status_code == 429:
                raise TransientHTTPError(f"HTTP {r.status_code}")
            return r

        return with_retry(once, f"upload to {self.base_url}", log=self.log)


class Participant:
    def __init__(self, *, chain: ChainClient, api: ApiClient, task_spec: str, shard: int, num_shards: int,
                 data_seed: int, data_file: Path | None, console: Console, poll: float = 0.5) -> None:
        self.chain = chain
        self.api = api
        self.task_spec = task_spec
        self.task = load_task(task_spec)
        self.shard = shard
        self.num_shards = num_shards
        self.data_seed = data_seed
        self.data_file = data_file
        self.console = console
        self.poll = poll
        self._data: Any = None
        self.me = chain.account.address if chain.account else ""

    def log(self, msg: str) -> None:
        self.console.print(f"[dim]node {self.me[:10]}[/] {msg}", highlight=False)

    def data(self, params: dict[str, Any]) -> Any:
        if self._data is None:
            if self.data_file is not None:
                self._data = self.task.load_data_file(self.data_file, params)
            else:
                self._data = self.task.node_data(self.shard, self.num_shards, self.data_seed, params)
            self.log(f"loaded {len(self._data)} private samples (they never leave this node)")
        return self._data

    def _chain(self, fn: Any, what: str) -> Any:
        return with_retry(fn, what, log=self.log)

    def participate(self, info: RoundInfo) -> bool:
        rid = info.round_id
        config = decode_json(self.api.blob(info.config_hash, max_bytes=MAX_CONFIG_BYTES), max_bytes=MAX_CONFIG_BYTES)
        if config.get("task") != self.task_spec:
            self.log(f"round {rid} trains task {config.get('task')!r}, this node runs {self.task_spec!r}: skipping")
            return False
        base = decode_tensors(self.api.blob(info.base_model_hash, max_bytes=self.api.max_blob_bytes),
                              max_bytes=self.api.max_blob_bytes)
        params = config.get("task_params") or {}
        training = config.get("training") or {}
        model = self.task.build_model(params, 0)
        load_arrays_into(model, base)
        data = self.data(params)
        with Progress(TextColumn(f"round {rid} training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True, disable=not self.console.is_terminal) as bar:
            task_id = bar.add_task("train", total=None)

            def progress(step: int, total: int) -> None:
                bar.update(task_id, completed=step, total=total)

            metrics = self.task.train(
                model, data, epochs=int(training.get("epochs", 1)), batch_size=int(training.get("batch_size", 64)),
                lr=float(training.get("lr", 1e-3)), seed=int(config.get("seed", 0)) * 1009 + self.shard,
                progress=progress,
            )
        blob = encode_tensors(state_dict_to_arrays(model))
        h = commitment(blob)
        signature = sign_upload(self.chain.account, self.chain.chain_id, self.chain.rounds_address, rid, h)
        r = self.api.upload(rid, h, blob, signature)
        if r.status_code not in (200, 201):
            detail = _error_detail(r)
            self.log(f"[red]round {rid}: upload refused (HTTP {r.status_code}): {detail}[/]")
            return False
        try:
            tx = self._chain(lambda: self.chain.submit_update(rid, h, len(data)), "submitUpdate")
        except ContractRevert as exc:
            self.log(f"[red]round {rid}: commit refused by the contract: {exc.name} {exc.args_dict}[/]")
            return False
        loss = metrics.get("loss")
        self.log(f"round {rid}: committed {h[:18]}… ({len(data)} samples, gas {tx.gas_used}"
                 + (f", train loss {loss:.4g})" if loss is not None else ")"))
        return True

    def run(self, rounds: int | None) -> int:
        handled: set[int] = set()
        done = 0
        self.log(f"watching chain {self.chain.chain_id} (rounds contract {self.chain.rounds_address})")
        while rounds is None or done < rounds:
            rid = self._chain(self.chain.current_round_id, "currentRoundId")
            if rid == 0 or rid in handled:
                time.sleep(self.poll)
                continue
            info = self._chain(lambda: self.chain.get_round(rid), "getRound")
            handled.add(rid)
            if info.status != RoundStatus.OPEN:
                continue
            if self._chain(lambda: self.chain.get_commitment(rid, self.me), "getCommitment") is not None:
                self.log(f"round {rid}: already committed (restarted?)")
            elif time.time() > info.deadline:
                self.log(f"round {rid}: deadline passed before we saw it; waiting for the next round")
                continue
            else:
                try:
                    if not self.participate(info):
                        continue
                except (HashMismatch, ConfigError) as exc:
                    self.log(f"[red]round {rid}: {exc}[/]")
                    continue
            done += 1
        self.log(f"done: took part in {done} round(s)")
        return 0


def _error_detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("detail") or body)
    except ValueError:
        return r.text[:200]


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console(stderr=False)
    account = resolve_account(private_key=args.private_key, keystore=args.keystore, dev_index=args.dev_account)
    settings = Settings()
    api = ApiClient(args.api_url, max_blob_bytes=settings.max_blob_bytes, log=console.print)
    chain = with_retry(
        lambda: connect_local_or_api(args.rpc_url, deployments_dir=settings.deployments_dir, repo_root=REPO_ROOT,
                                     api_deployment=api.deployment, account=account),
        f"connect to {args.rpc_url}", attempts=3, log=console.print,
    )
    if not chain.is_active_node(account.address):
        raise ConfigError(f"{account.address} is not an active node of the registry {chain.registry_address}",
                          hint="ask the admin to run `fedchain admit ADDRESS`")
    participant = Participant(chain=chain, api=api, task_spec=args.task, shard=args.shard,
                              num_shards=args.num_shards, data_seed=args.data_seed, data_file=args.data,
                              console=console)
    return participant.run(args.rounds)


def main(argv: list[str] | None = None) -> int:
    from fedchain.cli import report_error

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return run(args, console)
    except KeyboardInterrupt:
        return 130
    except FedchainError as exc:
        return report_error(exc, console)
