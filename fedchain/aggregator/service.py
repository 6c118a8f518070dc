"""The aggregator's round loop.

One round: write the round config blob, ``openRound``, wait for the deadline or for every active
node to commit, fetch and check each committed update, merge the accepted ones
(:func:`fedchain.aggregator.compute.compute_round`), store the model and the round report, then
``finalizeRound``. Without quorum the round is expired once ``deadline + gracePeriod`` has passed.
The aggregator is trusted for liveness only: anyone can recompute a round (``fedchain verify``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fedchain.aggregator.compute import RoundComputation, compute_round
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundStatus
from fedchain.codec import decode_json, decode_tensors, encode_json, encode_tensors, load_arrays_into, state_dict_to_arrays
from fedchain.errors import BlobNotFound, ConfigError, ContractRevert
from fedchain.hashing import commitment
from fedchain.store import BlobStore
from fedchain.strategy import get_strategy

CONFIG_VERSION = 1
MAX_CONFIG_BYTES = 1024 * 1024
REPORT_VERSION = 1


@dataclass
class RoundSummary:
    round: int
    status: str
    global_model_hash: str | None
    accepted: int
    rejected: int
    metrics: dict[str, float] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)
    report_hash: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "status": self.status,
            "global_model_hash": self.global_model_hash,
            "report_hash": self.report_hash,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "metrics": self.metrics,
            "gas": self.gas,
            "rejections": self.reasons,
        }


def genesis_model(task: Any, task_params: dict[str, Any], seed: int) -> tuple[bytes, str]:
    """The deterministic initial model for (task, params, seed): canonical bytes and hash."""
    model = task.build_model(task_params, seed)
    data = encode_tensors(state_dict_to_arrays(model))
    return data, commitment(data)


def build_config(
    *, task_spec: str, task_params: dict[str, Any], training: dict[str, Any], strategy: dict[str, Any],
    seed: int, round_id: int, min_updates: int, eval_seed: int,
) -> dict[str, Any]:
    return {
        "version": CONFIG_VERSION,
        "round": round_id,
        "task": task_spec,
        "task_params": task_params,
        "training": training,
        "strategy": strategy,
        "seed": seed,
        "eval_seed": eval_seed,
        "min_updates": min_updates,
    }


class Aggregator:
    def __init__(
        self,
        chain: ChainClient,
        store: BlobStore,
        task: Any,
        *,
        task_spec: str,
        task_params: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        strategy: str = "fedavg",
        strategy_params: dict[str, Any] | None = None,
        seed: int = 0,
        model_seed: int = 0,
        max_blob_bytes: int = 64 * 1024 * 1024,
        poll_interval: float = 0.5,
        uploads_lookup: Callable[[int, str], Sequence[str]] | None = None,
        on_sync: Callable[[], Any] | None = None,
        on_wait: Callable[[int, int, int, float], None] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.chain = chain
        self.store = store
        self.task = task
        self.task_spec = task_spec
        self.task_params = dict(task_params if task_params is not None else task.default_params())
        self.training = dict(training if training is not None else task.default_training())
        self.strategy = {"name": strategy, "params": get_strategy(strategy, strategy_params or {}).params}
        self.seed = seed
        self.model_seed = model_seed
        self.max_blob_bytes = max_blob_bytes
        self.poll = poll_interval
        self.uploads_lookup = uploads_lookup
        self.on_sync = on_sync
        #: progress while a round waits: (round, committed, expected, seconds to the deadline)
        self.on_wait = on_wait
        self.log = log

    # -- genesis -------------------------------------------------------------------------------
    def ensure_genesis(self) -> str:
        """Store the genesis model; set it on-chain if unset (needs the admin role)."""
        data, h = genesis_model(self.task, self.task_params, self.model_seed)
        on_chain = self.chain.genesis_model_hash()
        if on_chain is None:
            self.store.put(data, expected_hash=h)
            try:
                self.chain.set_genesis_model(h)
            except ContractRevert as exc:
                raise ConfigError(
                    f"the chain has no genesis model and this key cannot set it ({exc.name})",
                    hint="deploy with `fedchain deploy --task ...` (sets it), or run the aggregator with the admin key",
                ) from exc
            self.log(f"genesis model {h} set on-chain")
            return h
        if on_chain == h:
            self.store.put(data, expected_hash=h)
        elif not self.store.has(on_chain):
            raise ConfigError(
                f"the chain's genesis model {on_chain} differs from this task's ({h}) and is not in the store",
                hint="start the aggregator with the same --task, task parameters and --model-seed used at deploy",
            )
        return on_chain

    @staticmethod
    def _missing_base(base_hash: str) -> ConfigError:
        return ConfigError(
            f"the latest model {base_hash} is not in this aggregator's store",
            hint="point FEDCHAIN_DATA_DIR at the store that produced it",
        )

    def _base_arrays(self, base_hash: str) -> dict[str, np.ndarray]:
        try:
            data = self.store.get(base_hash)
        except BlobNotFound as exc:
            raise self._missing_base(base_hash) from exc
        return decode_tensors(data, max_bytes=self.max_blob_bytes)

    # -- one round -----------------------------------------------------------------------------
    def open_round(self, *, min_updates: int, round_seconds: float) -> tuple[int, dict[str, Any]]:
        current = self.chain.current_round_id()
        if current:
            info = self.chain.get_round(current)
            if info.status == RoundStatus.OPEN and self.store.has(info.config_hash):
                # We opened it before a restart: pick it up where it is, nothing is lost.
                config = decode_json(self.store.get(info.config_hash), max_bytes=MAX_CONFIG_BYTES)
                self.log(f"resuming round {current}, still open on-chain")
                return current, {"config": config}
            # Past deadline + grace the contract expires a stale open round itself in openRound.
            if info.status == RoundStatus.OPEN and time.time() <= info.deadline + self.chain.grace_period() + 1:
                raise ConfigError(
                    f"round {current} is still open on-chain",
                    hint="wait for it to be finalized or expired (anyone may call expireRound after the grace period)",
                )
        base = self.chain.latest_model_hash()
        if not self.store.has(base):  # fail before opening a round nobody could train from
            raise self._missing_base(base)
        round_id = current + 1
        config = build_config(
            task_spec=self.task_spec, task_params=self.task_params, training=self.training,
            strategy=self.strategy, seed=self.seed * 1_000_003 + round_id, round_id=round_id,
            min_updates=min_updates, eval_seed=self.seed,
        )
        config_hash = self.store.put(encode_json(config))
        deadline = int(time.time() + round_seconds)
        rid, tx = self.chain.open_round(base, config_hash, deadline, min_updates)
        return rid, {"config": config, "open_gas": tx.gas_used}

    def wait_for_commitments(self, round_id: int) -> None:
        """Until every active node committed, or the deadline passed."""
        info = self.chain.get_round(round_id)
        while True:
            expected = max(1, self.chain.node_count())
            if info.commit_count >= expected or time.time() > info.deadline + 1:
                return
            if self.on_wait:
                self.on_wait(round_id, info.commit_count, expected, max(0.0, info.deadline - time.time()))
            time.sleep(self.poll)
            info = self.chain.get_round(round_id)

    def run_round(self, *, min_updates: int, round_seconds: float) -> RoundSummary:
        rid, opened = self.open_round(min_updates=min_updates, round_seconds=round_seconds)
        config = opened["config"]
        if "open_gas" in opened:
            self.log(f"round {rid} opened (deadline in {round_seconds:.0f} s, quorum {min_updates})")
        self.wait_for_commitments(rid)
        info = self.chain.get_round(rid)
        min_updates = info.min_updates  # the round's own quorum (a resumed round keeps its own)
        base = self._base_arrays(info.base_model_hash)

        def fetch(h: str) -> bytes | None:
            return self.store.get(h) if self.store.has(h) else None

        uploads = (lambda node: self.uploads_lookup(rid, node)) if self.uploads_lookup else None
        while True:
            commitments = self.chain.commitments(rid)
            comp = compute_round(config, base, commitments, fetch, max_bytes=self.max_blob_bytes,
                                 min_updates=min_updates, uploads=uploads)
            if self.chain.get_round(rid).commit_count == len(commitments):
                break  # no commitment slipped in while we computed
        gas = {"open": opened["open_gas"]} if "open_gas" in opened else {}
        if comp.model_hash is None:
            return self._expire(rid, info.deadline, comp, gas)
        return self._finalize(rid, info.base_model_hash, info.config_hash, config, comp, gas)

    def _metrics(self, model: dict[str, np.ndarray], config: dict[str, Any]) -> dict[str, float]:
        module = self.task.build_model(config["task_params"], self.model_seed)
        load_arrays_into(module, model)
        metrics = self.task.evaluate(module, None, seed=config["eval_seed"], params=config["task_params"])
        return {k: float(v) for k, v in metrics.items()}

    def _finalize(self, rid: int, base_hash: str, config_hash: str, config: dict[str, Any],
                  comp: RoundComputation, gas: dict[str, int]) -> RoundSummary:
        assert comp.model_bytes is not None and comp.model_hash is not None and comp.model is not None
        self.store.put(comp.model_bytes, expected_hash=comp.model_hash)
        metrics = self._metrics(comp.model, config)
        report = {
            "version": REPORT_VERSION,
            "round": rid,
            "chain_id": self.chain.chain_id,
            "contract": self.chain.rounds_address,
            "base_model_hash": base_hash,
            "config_hash": config_hash,
            "global_model_hash": comp.model_hash,
            "strategy": config["strategy"],
            "updates": [d.to_json() for d in comp.decisions],
            "accepted": len(comp.accepted),
            "rejected": len(comp.rejected),
            "metrics": metrics,
        }
        report_hash = self.store.put(encode_json(report))
        tx = self.chain.finalize_round(rid, comp.model_hash, report_hash, len(comp.accepted))
        gas["finalize"] = tx.gas_used
        if self.on_sync:
            self.on_sync()
        return RoundSummary(
            round=rid, status="finalized", global_model_hash=comp.model_hash, accepted=len(comp.accepted),
            rejected=len(comp.rejected), metrics=metrics, gas=gas, report_hash=report_hash,
            reasons={d.node: d.reason or "" for d in comp.rejected},
        )

    def _expire(self, rid: int, deadline: int, comp: RoundComputation, gas: dict[str, int]) -> RoundSummary:
        grace = self.chain.grace_period()
        wait = deadline + grace + 1 - time.time()
        self.log(f"round {rid}: {len(comp.accepted)} valid update(s), below quorum; expiring in {max(0, wait):.0f} s")
        if wait > 0:
            time.sleep(wait)
        for attempt in range(10):
            try:
                tx = self.chain.expire_round(rid)
                gas["expire"] = tx.gas_used
                break
            except ContractRevert as exc:
                if exc.name == "RoundNotOpen":  # someone else expired it first: fine
                    break
                if exc.name != "ExpiryNotReached" or attempt == 9:
                    raise
                time.sleep(2)  # the chain's clock lags ours: wait for a later block
        if self.on_sync:
            self.on_sync()
        return RoundSummary(
            round=rid, status="expired", global_model_hash=None, accepted=len(comp.accepted),
            rejected=len(comp.rejected), gas=gas, reasons={d.node: d.reason or "" for d in comp.rejected},
        )

    def run(self, *, rounds: int, min_updates: int, round_seconds: float,
            on_round: Callable[[RoundSummary], None] | None = None) -> list[RoundSummary]:
        self.ensure_genesis()
        out = []
        for _ in range(rounds):
            summary = self.run_round(min_updates=min_updates, round_seconds=round_seconds)
            out.append(summary)
            if on_round:
                on_round(summary)
        return out
