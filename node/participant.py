"""The participant node process.

It needs three things: the chain's RPC URL, the aggregator API URL, and its key (a keystore file
with the password in ``FEDCHAIN_KEYSTORE_PASSWORD``, or a dev-account index on a local anvil).
Each round it downloads the base model and the round config by hash and checks both hashes against
the chain, trains locally (a progress bar shows it), and serialises its update canonically with
its identity (chain, contract, round, its address) in the blob, so a copied commitment is
detectably someone else's. It uploads the blob with an EIP-712 signed request, keeps the
aggregator's signed receipt, then commits the hash: directly with ``submitUpdate`` (it pays gas),
or in relay mode as a signed commitment that the aggregator batches, falling back to a direct
commit if it is not on-chain by the relay cut-off. Its data never leaves the process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedchain.aggregator.config import MAX_CONFIG_BYTES, RoundRules
from fedchain.apiclient import ApiClient, error_detail, error_reason
from fedchain.auth import recover_receipt_signer, sign_commitment, sign_unmask, sign_upload
from fedchain.chain.accounts import resolve_account
from fedchain.chain.client import ChainClient, connect_local_or_api
from fedchain.chain.types import RoundInfo, RoundStatus
from fedchain.codec import UpdateIdentity, decode_json, decode_tensors, encode_update, load_arrays_into, state_dict_to_arrays
from fedchain.console import make_console, report_error
from fedchain.errors import BlobError, ConfigError, ContractRevert, FedchainError, Forbidden
from fedchain.hashing import commitment
from fedchain.retry import with_retry
from fedchain.settings import REPO_ROOT, Settings
from fedchain.tasks import load_task
from node.args import build_parser


def train_throwaway(task: Any, params: dict[str, Any], data: Any) -> None:
    """Train a fresh model one epoch on ``data`` and drop it: torch's first-use costs (lazy imports,
    the optimiser, kernels; about a CPU-second) are then paid, and the next training is fast."""
    training = task.default_training()
    task.train(task.build_model(params, 0), data, epochs=1, batch_size=int(training.get("batch_size", 64)),
               lr=float(training.get("lr", 1e-3)), seed=0)


class Participant:
    def __init__(self, *, chain: ChainClient, api: ApiClient, task_spec: str, shard: int, num_shards: int,
                 data_seed: int, data_file: Path | None, console: Console, poll: float = 0.5,
                 commit_mode: str = "direct", retry_seconds: float = 300.0, receipts_dir: Path | None = None,
                 hostile: Any = None, crash_at: tuple[str, int] | None = None,
                 dp: dict[str, float] | None = None, watcher: Any = None) -> None:
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
        self._data_key: str | None = None
        self.me = chain.account.address if chain.account else ""
        self.commit_mode = commit_mode
        self.retry_seconds = retry_seconds
        self.receipts_dir = receipts_dir or Path.cwd() / ".fedchain" / "receipts" / self.me
        self.aggregator = chain.deployment.aggregator or ""
        #: A :class:`fedchain.attacks.process.Hostile` for robustness experiments (None: an honest node).
        self.hostile = hostile
        #: (stage, round): die there, for dropout tests (--crash-at).
        self.crash_at = crash_at
        self._secure_sets: dict[int, tuple[list[str], dict[str, bytes]]] = {}
        self._secret: bytes | None = None
        #: Record-level DP-SGD settings (noise_multiplier, max_grad_norm, delta), or None.
        self.dp = dp
        self._accountant: Any = None
        #: A node.watch.RoundWatcher (round events pushed by the API), or None: poll only.
        self.watcher = watcher
        if chain.account is not None:
            from fedchain.chain.accounts import secure_keys

            self.x25519_private, self.x25519_public = secure_keys(chain.account)
        else:
            self.x25519_private, self.x25519_public = b"", b""

    def _idle(self, poll: float) -> None:
        """Until a round event is pushed or ``poll`` seconds pass (longer while events arrive)."""
        if self.watcher is not None:
            self.watcher.wait(poll)
        else:
            time.sleep(poll)

    def log(self, msg: str) -> None:
        self.console.print(f"[dim]node {self.me[:10]}[/] {msg}", highlight=False)

    def data(self, params: dict[str, Any]) -> Any:
        """This node's samples for the task parameters ``params`` (loaded once per parameter set)."""
        key = json.dumps(params, sort_keys=True, default=str)
        if self._data is None or self._data_key != key:
            if self.data_file is not None:
                self._data = self.task.load_data_file(self.data_file, params)
            else:
                self._data = self.task.node_data(self.shard, self.num_shards, self.data_seed, params)
            self._data_key = key
            self.log(f"loaded {len(self._data)} private samples (they never leave this node)")
            if self.hostile is not None:
                self._data = self.hostile.poison(self._data, self.task, self.data_seed * 1009 + self.shard)
                self.log(f"[red]{self.hostile.describe()}[/]")
        return self._data

    def warm_up(self) -> None:
        """Do the first-round work that does not depend on the round before one opens: load the data
        for the task's default parameters, and train a throwaway model one epoch on it, which pays
        torch's first-use costs (about a CPU-second: lazy imports, the optimiser, kernels) here
        rather than inside round 1's deadline."""
        params = self.task.default_params()
        data = self.data(params)
        if self.dp is None:
            train_throwaway(self.task, params, data)

    def signal_ready(self, path: Path | None) -> None:
        """Write ``path`` (JSON: address, pid, time) once this node can train: a launcher such as
        ``fedchain demo`` waits for every node's file before it opens round 1."""
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"address": self.me, "pid": os.getpid(), "ready_at": time.time()}))
        tmp.replace(path)  # atomic: a reader never sees half a file

    def _chain(self, fn: Any, what: str) -> Any:
        return with_retry(fn, what, timeout=self.retry_seconds, log=self.log)

    def participate(self, info: RoundInfo) -> bool:
        rid = info.round_id
        config = decode_json(self.api.blob(info.config_hash, max_bytes=MAX_CONFIG_BYTES), max_bytes=MAX_CONFIG_BYTES)
        if config.get("task") != self.task_spec:
            self.log(f"round {rid} trains task {config.get('task')!r}, this node runs {self.task_spec!r}: skipping")
            return False
        rules = RoundRules.of(config)
        base = decode_tensors(self.api.blob(info.base_model_hash, max_bytes=rules.max_update_bytes),
                              max_bytes=rules.max_update_bytes)
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

            mu = float(((config.get("strategy") or {}).get("params") or {}).get("mu", 0) or 0)
            started = time.monotonic()
            if getattr(self, "dp", None) is not None:
                metrics = self._train_dp_sgd(rid, model, data, training, mu, progress)
            else:
                metrics = self.task.train(
                    model, data, epochs=int(training.get("epochs", 1)), batch_size=int(training.get("batch_size", 64)),
                    lr=float(training.get("lr", 1e-3)), seed=int(config.get("seed", 0)) * 1009 + self.shard,
                    progress=progress, **({"prox_mu": mu} if mu else {}),
                )
        self.log(f"round {rid}: trained on {len(data)} samples in {time.monotonic() - started:.2f} s")
        self._fault(rid, "after-training")
        identity = UpdateIdentity(self.chain.chain_id, self.chain.rounds_address, rid, self.me)
        weights = state_dict_to_arrays(model)
        # The contract caps the weight a node may claim; an honest node with more data claims the cap.
        samples = min(len(data), info.max_samples)
        if self.hostile is not None:  # robustness experiments: forge the update before encoding it
            weights = self.hostile.forge(
                task=self.task, make_model=lambda: self.task.build_model(params, 0), base=base, trained=weights,
                data=data, training=training, seed=int(config.get("seed", 0)) * 1009 + self.shard, round_id=rid,
                me=self.me)
            samples = self.hostile.claim(len(data), info.max_samples)
        if rules.is_secure:
            blob = self._masked_update(info, rules, base, weights, samples)
            if blob is None:
                return False
        else:
            blob = encode_update(weights, identity)
        h = commitment(blob)
        signature = sign_upload(self.chain.account, self.chain.chain_id, self.chain.rounds_address, rid, h)
        r = self.api.upload(rid, h, blob, signature)
        if r.status_code not in (200, 201):
            self.log(f"[red]round {rid}: upload refused (HTTP {r.status_code}): {error_detail(r)}[/]")
            return False
        self._keep_receipt(rid, h, r)
        self._fault(rid, "after-upload")
        try:
            tx = self._commit(info, h, samples)
        except ContractRevert as exc:
            self.log(f"[red]round {rid}: commit refused by the contract: {exc.name} {exc.args_dict}[/]")
            return False
        loss = metrics.get("loss")
        how = f"gas {tx.gas_used}" if tx is not None else "relayed by the aggregator"
        self.log(f"round {rid}: committed {h[:18]}… ({samples} samples, {how}"
                 + (f", train loss {loss:.4g})" if loss is not None else ")"))
        self._fault(rid, "after-commit")
        if rules.is_secure:
            self._unmask(info)
        return True

    def _train_dp_sgd(self, rid: int, model: Any, data: Any, training: dict[str, Any], mu: float,
                      progress: Any) -> dict[str, float]:
        """Record-level DP-SGD (fedchain.tasks.dpsgd): this node's own ε, cumulative over its rounds.
        The noise seed is secret (a public seed would let anyone regenerate the noise), and the
        accountant state is kept in the receipts folder so ε survives a restart."""
        import secrets

        from fedchain.tasks.dpsgd import train_dp_sgd

        if mu:
            self.log(f"[yellow]round {rid}: FedProx's proximal term (mu={mu:g}) is not applied under DP-SGD[/]")
        metrics = train_dp_sgd(
            self.task, model, data, epochs=int(training.get("epochs", 1)),
            batch_size=int(training.get("batch_size", 64)), lr=float(training.get("lr", 1e-3)),
            seed=secrets.randbits(63), noise_multiplier=self.dp["noise_multiplier"],
            max_grad_norm=self.dp["max_grad_norm"], delta=self.dp["delta"], accountant=self._dp_accountant(),
            progress=progress)
        self._save_dp_accountant()
        self.log(f"round {rid}: DP-SGD record-level ε = {metrics['epsilon_total']:.3g} at δ = {metrics['delta']:g} "
                 f"over this node's rounds (this round {metrics['epsilon']:.3g}; σ = {self.dp['noise_multiplier']:g}, "
                 f"C = {self.dp['max_grad_norm']:g})")
        return metrics

    def _dp_path(self) -> Path:
        return self.receipts_dir / "dp-sgd-accountant.json"

    def _dp_accountant(self) -> Any:
        if self._accountant is None:
            from fedchain.tasks.dpsgd import new_accountant

            self._accountant = new_accountant()
            path = self._dp_path()
            if path.exists():
                self._accountant.load_state_dict(json.loads(path.read_text()))
        return self._accountant

    def _save_dp_accountant(self) -> None:
        self.receipts_dir.mkdir(parents=True, exist_ok=True)
        self._dp_path().write_text(json.dumps(self._accountant.state_dict()))

    # -- secure rounds ---------------------------------------------------------------------------
    def _fault(self, rid: int, stage: str) -> None:
        """Fault injection for dropout tests (--crash-at): the process dies here, as a crash would."""
        if self.crash_at is not None and self.crash_at == (stage, rid):
            self.log(f"[red]crashing at {stage} in round {rid} (--crash-at)[/]")
            self.console.file.flush()
            os._exit(17)

    def _secure_round(self, info: RoundInfo) -> tuple[list[str], dict[str, bytes], Any]:
        from fedchain.secure.keys import RoundContext as SecureContext
        from fedchain.secure.keys import is_valid_public_key

        if info.round_id not in self._secure_sets:
            selected, keys = self._chain(lambda: self.chain.selected_set(info), "read the round's secure set")
            s = [a for a in selected if is_valid_public_key(keys.get(a, b""))]
            self._secure_sets = {info.round_id: (s, keys)}
        s, keys = self._secure_sets[info.round_id]
        return s, keys, SecureContext(chain_id=self.chain.chain_id, contract=self.chain.rounds_address,
                                      round=info.round_id)

    def _masked_update(self, info: RoundInfo, rules: RoundRules, base: dict[str, Any], weights: dict[str, Any],
                       samples: int) -> bytes | None:
        """Secure mode: clip, weight, quantise, add the noise share, mask, share (docs/privacy.md)."""
        import numpy as np

        from fedchain.aggregator.secure_merge import secure_weight
        from fedchain.secure.pipeline import node_masked_update

        rid = info.round_id
        s, keys, ctx = self._secure_round(info)
        if self.me.lower() not in {a.lower() for a in s}:
            mine = keys.get(self.me)
            why = ("the key the registry holds for it is not this node's X25519 key" if mine
                   else "it has no valid X25519 key in the registry")
            self.log(f"[red]round {rid}: this node is not in the round's secure set: {why}[/] "
                     f"(its key is {self.x25519_public.hex()}; it takes part from the round after the key is "
                     f"registered: `fedchain admit {self.me} --public-key 0x{self.x25519_public.hex()}`)")
            return None
        if keys.get(self.me) != self.x25519_public:
            self.log(f"[red]round {rid}: the registry's key for this node is not its own X25519 key[/]")
            return None
        delta = {k: np.asarray(weights[k], dtype=np.float64) - np.asarray(base[k], dtype=np.float64) for k in base}
        self._secret = os.urandom(32)
        blob = node_masked_update(delta, secure=rules.secure, ctx=ctx, me=self.me, private_key=self.x25519_private,
                                  selected=s, public_keys=keys, secret=self._secret,
                                  weight=secure_weight(samples, info.max_samples))
        self.log(f"round {rid}: masked update ready ({len(blob):,} bytes; clipped to {rules.secure.fixed.clip:g}, "
                 f"{len(s)} nodes in the secure set, threshold {rules.secure.threshold})")
        return blob

    def _resume_unmask(self, info: RoundInfo) -> None:
        """A node restarted after committing in a secure round still posts its unmasking blob:
        that needs only its long-term key and the on-chain sets, not the lost round secret."""
        try:
            config = decode_json(self.api.blob(info.config_hash, max_bytes=MAX_CONFIG_BYTES),
                                 max_bytes=MAX_CONFIG_BYTES)
            if RoundRules.of(config).is_secure and not self.chain.has_unmasked(info.round_id, self.me):
                self._unmask(info)
        except FedchainError as exc:
            self.log(f"[yellow]round {info.round_id}: cannot resume the unmask step: {exc}[/]")

    def _unmask(self, info: RoundInfo) -> None:
        """After the seal: post this survivor's unmasking blob (off-chain) and its hash (on-chain)."""
        from fedchain.secure.pipeline import node_unmask_blob

        rid = info.round_id
        self.log(f"round {rid}: waiting for the aggregator to seal the commit phase")
        check_open_at = 0.0
        while True:
            phase = self._chain(lambda: self.chain.unmask_phase(rid), "read the unmask phase")
            if phase.sealed:
                break
            # Whether the round can still be sealed: two more reads, once a second (ten nodes polling
            # three reads every 0.1 s competed with the aggregator's seal for the machine).
            if time.monotonic() >= check_open_at:
                rnd = self._chain(lambda: self.chain.get_round(rid), "getRound")
                now = self._chain(self.chain.block_timestamp, "read the chain time")
                if rnd.status != RoundStatus.OPEN or now > phase.unmask_deadline:
                    self.log(f"[yellow]round {rid}: the commit phase was never sealed; nothing to unmask[/]")
                    return
                check_open_at = time.monotonic() + 1.0
            self._idle(min(self.poll, 0.1))  # one eth_call: the seal opens a short window
        s, keys, ctx = self._secure_round(info)
        view = self._chain(lambda: self.chain.secure_view(rid, selected=(s, keys)), "read the sealed round")
        survivors = [c.node for c in view.survivors]
        if self.me.lower() not in {a.lower() for a in survivors}:
            self.log(f"[red]round {rid}: the aggregator excluded this node's update at the seal[/] "
                     f"(the round report says why; the upload receipt in {self.receipts_dir} proves the upload)")
            return
        blob = node_unmask_blob(me=self.me, private_key=self.x25519_private, ctx=ctx, selected=s,
                                committed=survivors, public_keys=keys)
        h = commitment(blob)
        sig = sign_upload(self.chain.account, self.chain.chain_id, self.chain.rounds_address, rid, h)
        # Always offered for relaying: the aggregator posts every survivor's hash in one batch (one
        # transaction, 17k gas each instead of 43k), and a node whose hash is not on-chain by the
        # relay cut-off posts it itself, so relaying never depends on the aggregator's goodwill.
        relay_sig = sign_unmask(self.chain.account, self.chain.chain_id, self.chain.rounds_address, rid, h)
        r = self.api.upload_unmask(rid, h, blob, sig, relay_sig)
        if r.status_code == 409 and error_reason(r) == "round_not_open":
            self.log(f"round {rid}: the round closed with enough unmasking shares before ours was needed")
            return
        if r.status_code not in (200, 201):
            self.log(f"[red]round {rid}: unmasking blob refused (HTTP {r.status_code}): {error_detail(r)}[/]")
            if relay_sig is None or r.status_code >= 500:
                return
            r = self.api.upload_unmask(rid, h, blob, sig)  # past the relay cut-off: upload, then post directly
            if r.status_code not in (200, 201):
                return
        self._fault(rid, "after-unmask-upload")
        what = f"{len(survivors)} survivor(s) ({len(s) - len(survivors)} dropped or excluded"
        if relay_sig is not None and (r.json() or {}).get("relay") == "queued":
            closes = phase.unmask_deadline - info.relay_cutoff
            while self._chain(self.chain.block_timestamp, "read the chain time") <= closes + 1:
                if self._chain(lambda: self.chain.has_unmasked(rid, self.me), "hasUnmasked"):
                    self.log(f"round {rid}: unmasking shares for {what}; relayed by the aggregator)")
                    return
                if self._chain(lambda: self.chain.get_round(rid), "getRound").status != RoundStatus.OPEN:
                    self.log(f"round {rid}: the round closed with enough unmasking shares before ours was needed")
                    return
                time.sleep(min(self.poll, 0.2))
            if self._chain(lambda: self.chain.has_unmasked(rid, self.me), "hasUnmasked"):
                return
            self.log(f"[yellow]round {rid}: the relayed unmasking post is not on-chain by the cut-off; posting "
                     f"directly[/]")
        try:
            tx = self._chain(lambda: self.chain.submit_unmask(rid, h), "submitUnmask")
        except ContractRevert as exc:
            if exc.name == "RoundNotOpen":
                self.log(f"round {rid}: the round closed with enough unmasking shares before ours was needed")
                return
            self.log(f"[red]round {rid}: unmasking post refused by the contract: {exc.name} {exc.args_dict}[/]")
            return
        self.log(f"round {rid}: posted unmasking shares for {what}; gas {tx.gas_used})")

    def _keep_receipt(self, rid: int, h: str, r: Any) -> None:
        """Check the aggregator's signed receipt and keep it: proof that it had our blob."""
        try:
            receipt = r.json().get("receipt")
        except ValueError:
            receipt = None
        if not receipt:
            self.log(f"round {rid}: [yellow]the aggregator gave no signed receipt[/]")
            return
        signer = recover_receipt_signer(receipt["signature"], self.chain.chain_id, self.chain.rounds_address, rid,
                                        self.me, h)
        if self.aggregator and signer.lower() != self.aggregator.lower():
            self.log(f"round {rid}: [yellow]receipt signed by {signer}, not the deployment's aggregator "
                     f"{self.aggregator}[/]")
        self.receipts_dir.mkdir(parents=True, exist_ok=True)
        path = self.receipts_dir / f"round-{rid}.json"
        path.write_text(json.dumps({"round": rid, "node": self.me, "blob_hash": h, "signer": signer,
                                    "signature": receipt["signature"], "chain_id": self.chain.chain_id,
                                    "contract": self.chain.rounds_address}, indent=2))
        self.log(f"round {rid}: upload receipt {receipt['signature'][:18]}… signed by {signer} (kept in {path})")

    def _commit(self, info: RoundInfo, h: str, samples: int) -> Any:
        """Commit ``h``: directly, or relayed with a direct fallback at the relay cut-off.
        Returns the direct transaction's result, or None when the relay put it on-chain."""
        rid = info.round_id
        if self.commit_mode == "relay":
            sig = sign_commitment(self.chain.account, self.chain.chain_id, self.chain.rounds_address, rid, h, samples)
            r = self.api.post_commitment(rid, h, samples, sig)
            if r.status_code == 202:
                self.log(f"round {rid}: signed commitment posted for relaying; watching the chain until the "
                         f"relay cut-off")
                while self._chain(self.chain.block_timestamp, "read the chain time") <= info.relay_closes_at + 1:
                    if self._chain(lambda: self.chain.has_committed(rid, self.me), "hasCommitted"):
                        return None
                    time.sleep(self.poll)
                    # The quorum's close window may bring the deadline, and the cut-off, forward.
                    info = self._chain(lambda: self.chain.get_round(rid), "getRound")
                if self._chain(lambda: self.chain.has_committed(rid, self.me), "hasCommitted"):
                    return None
                self.log(f"[yellow]round {rid}: the relayed commitment is not on-chain by the cut-off; "
                         f"committing directly[/]")
            else:
                self.log(f"[yellow]round {rid}: relay refused (HTTP {r.status_code}: {error_detail(r)}); "
                         f"committing directly[/]")
        return self._chain(lambda: self.chain.submit_update(rid, h, samples), "submitUpdate")

    def check_secure_key(self) -> None:
        """Secure rounds need this node's X25519 key in the registry. If the registry holds another
        (or none), register ours with updateNode: it takes effect in rounds opened after it."""
        try:
            node = self.chain.get_node(self.me)
        except FedchainError as exc:
            self.log(f"[yellow]cannot read this node's registry entry: {exc}[/]")
            return
        if node.get("publicKey") == self.x25519_public:
            return
        try:
            self._chain(lambda: self.chain.update_node(self.x25519_public, node.get("metadataHash")), "updateNode")
            self.log(f"registered this node's X25519 key {self.x25519_public.hex()[:16]}… for secure rounds "
                     f"(it takes effect from the next round opened)")
        except FedchainError as exc:
            self.log(f"[yellow]the registry does not hold this node's X25519 key and it cannot be registered "
                     f"({exc}); secure rounds will leave this node out[/] (the admin can run `fedchain admit "
                     f"{self.me} --public-key 0x{self.x25519_public.hex()}`)")

    def run(self, rounds: int | None, idle_exit: float = 0.0) -> int:
        """Take part in rounds until ``rounds`` are done, or (``idle_exit`` > 0) until no round has
        been open for ``idle_exit`` seconds since one closed: the aggregator has finished."""
        handled: set[int] = set()
        done = 0
        idle_since: float | None = None  # when the last open round was seen closed (monotonic)
        announced: int | None = None
        self.log(f"watching chain {self.chain.chain_id} (rounds contract {self.chain.rounds_address})"
                 + (f"; stopping after {rounds} round(s)" if rounds else "")
                 + (f"; or when no round is open for {idle_exit:.0f} s" if idle_exit else ""))
        while rounds is None or done < rounds:
            rid = self._chain(self.chain.current_round_id, "currentRoundId")
            if rid == 0 or rid in handled:
                if rid and idle_exit:
                    if self._chain(lambda: self.chain.get_round(rid), "getRound").status == RoundStatus.OPEN:
                        idle_since = None
                    else:
                        if idle_since is None:
                            idle_since = time.monotonic()
                        if announced != rid:
                            announced = rid
                            self.log(f"round {rid} closed; waiting for the next round (stopping if none opens "
                                     f"within {idle_exit:.0f} s)")
                        if time.monotonic() - idle_since >= idle_exit:
                            self.log(f"done: no round opened for {idle_exit:.0f} s after round {rid} closed, so the "
                                     f"federation has ended (--idle-exit); took part in {done} round(s)")
                            return 0
                self._idle(self.poll)
                continue
            idle_since = None
            info = self._chain(lambda: self.chain.get_round(rid), "getRound")
            handled.add(rid)
            if info.status != RoundStatus.OPEN:
                continue
            if self._chain(lambda: self.chain.has_committed(rid, self.me), "hasCommitted"):
                self.log(f"round {rid}: already committed (restarted?)")
                self._resume_unmask(info)
            elif self._chain(self.chain.block_timestamp, "read the chain time") > info.deadline:
                self.log(f"round {rid}: deadline passed (chain time) before we saw it; waiting for the next round")
                continue
            elif not self._chain(lambda: self.chain.is_eligible(rid, self.me), "isEligible"):
                self.log(f"round {rid}: this node is not eligible (admitted after the round opened, or not "
                         f"selected); waiting for the next round")
                continue
            else:
                try:
                    if not self.participate(info):
                        continue
                except (BlobError, ConfigError, Forbidden) as exc:
                    self.log(f"[red]round {rid}: {exc}[/]")
                    continue
            done += 1
        self.log(f"done: took part in {done} round(s) (--rounds {rounds} reached); exiting")
        return 0


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or make_console()
    if not 0 <= args.shard < args.num_shards:
        raise ConfigError(f"--shard {args.shard} is not in 0..{args.num_shards - 1}",
                          hint="shards are numbered from 0: --shard 0 .. --shard NUM_SHARDS-1")
    hostile = hostile_from_args(args)  # a bad --attack fails before anything connects
    account = resolve_account(private_key=args.private_key, keystore=args.keystore, dev_index=args.dev_account)
    if getattr(args, "show_public_key", False):
        from fedchain.chain.accounts import secure_keys

        console.print(f"{account.address} X25519 public key 0x{secure_keys(account)[1].hex()}", highlight=False)
        return 0
    if args.show_receipts:
        return show_receipts(args.receipts_dir or Path.cwd() / ".fedchain" / "receipts" / account.address, console)
    settings = Settings()
    api = ApiClient(args.api_url, log=console.print, retry_seconds=args.retry_seconds, reader=account)
    chain = with_retry(
        lambda: connect_local_or_api(args.rpc_url, deployments_dir=settings.deployments_dir, repo_root=REPO_ROOT,
                                     api_deployment=api.deployment, account=account),
        f"connect to {args.rpc_url}", timeout=args.retry_seconds, log=console.print,
    )
    api.chain_id, api.contract = chain.chain_id, chain.rounds_address
    if not chain.is_active_node(account.address):
        raise ConfigError(f"{account.address} is not an active node of the registry {chain.registry_address}",
                          hint="ask the admin to run `fedchain admit ADDRESS`")
    participant = Participant(chain=chain, api=api, task_spec=args.task, shard=args.shard,
                              num_shards=args.num_shards, data_seed=args.data_seed, data_file=args.data,
                              console=console, commit_mode=args.commit_mode, retry_seconds=args.retry_seconds,
                              receipts_dir=args.receipts_dir, hostile=hostile,
                              crash_at=parse_crash_at(getattr(args, "crash_at", None)),
                              dp=({"noise_multiplier": args.dp_noise_multiplier, "max_grad_norm": args.dp_max_grad_norm,
                                   "delta": args.dp_delta} if getattr(args, "dp_sgd", False) else None))
    if not getattr(args, "no_events", False):
        from node.watch import RoundWatcher

        participant.watcher = RoundWatcher(api.events, log=participant.log).start()
    participant.check_secure_key()
    participant.warm_up()
    participant.signal_ready(getattr(args, "ready_file", None))
    return participant.run(args.rounds, idle_exit=float(getattr(args, "idle_exit", 0) or 0))


CRASH_STAGES = ("after-training", "after-upload", "after-commit", "after-unmask-upload")


def parse_crash_at(text: str | None) -> tuple[str, int] | None:
    """``STAGE@ROUND`` (``--crash-at after-upload@2``) as (stage, round); ConfigError if bad."""
    if not text:
        return None
    stage, _, rnd = text.partition("@")
    if stage not in CRASH_STAGES or not rnd.isdigit() or int(rnd) < 1:
        raise ConfigError(f"--crash-at must be STAGE@ROUND with STAGE one of {', '.join(CRASH_STAGES)}, got {text!r}",
                          hint="e.g. --crash-at after-commit@2")
    return stage, int(rnd)


def hostile_from_args(args: argparse.Namespace) -> Any:
    """The hostile behaviour ``--attack``/``--attack-param`` ask for, or None (ConfigError if bad)."""
    if not getattr(args, "attack", None) or args.attack == "none":
        return None
    from fedchain.attacks.process import Hostile

    return Hostile(args.attack, getattr(args, "attack_param", None) or [], num_shards=args.num_shards)


def show_receipts(folder: Path, console: Console) -> int:
    """Print the receipts in ``folder``, each with the signer it recovers to (checked offline)."""
    from rich.table import Table

    files = sorted(folder.glob("round-*.json"), key=lambda p: int(p.stem[6:]) if p.stem[6:].isdigit() else 0)
    if not files:
        raise ConfigError(f"no receipts in {folder}", hint="receipts are kept after each upload; pass --receipts-dir")
    t = Table(title=f"upload receipts in {folder}")
    for col in ("round", "blob hash", "signed by", "signature"):
        t.add_column(col)
    for path in files:
        try:
            r = json.loads(path.read_text())
            signer = recover_receipt_signer(r["signature"], r["chain_id"], r["contract"], r["round"], r["node"],
                                            r["blob_hash"])
            ok = "" if signer.lower() == str(r.get("signer", "")).lower() else " (does not match the file!)"
            t.add_row(str(r["round"]), r["blob_hash"], signer + ok, r["signature"][:20] + "…")
        except (ValueError, KeyError, TypeError, FedchainError) as exc:
            t.add_row(path.stem, "-", f"unreadable: {exc}", "-")
    console.print(t)
    console.print("contest a missing_upload claim with: fedchain verify --round N --receipt FILE", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = build_parser().parse_args(argv)
    console = make_console()
    try:
        return run(args, console)
    except KeyboardInterrupt:
        return 130
    except FedchainError as exc:
        return report_error(exc, console)
