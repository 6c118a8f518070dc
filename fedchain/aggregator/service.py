"""The aggregator's round loop.

One round: write the round config blob (every result-affecting setting, see
:mod:`fedchain.aggregator.config`), ``openRound`` with a deadline in chain time, relay the signed
commitments nodes post to the API, wait until every eligible node has committed or the deadline
has passed *by chain time*, read the round and its commitment list at one block, check and merge
(:func:`fedchain.aggregator.compute.compute_round`), store the model and the report, then
``finalizeRound``. Without quorum the round is expired once ``deadline + gracePeriod`` has passed.

The aggregator is trusted for liveness only: anyone can recompute a round (``fedchain verify``),
and the contract refuses an early close while an eligible node has not committed. An RPC outage
does not end the loop: it retries with capped backoff and reports ``degraded`` meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fedchain.aggregator.compute import ModelShapes, RoundComputation, RoundContext, compute_round, reads_base_values
from fedchain.aggregator.config import (
    CONFIG_VERSION, DEFAULT_MAX_SAMPLES, DEFAULT_MAX_UPDATE_BYTES, MAX_CONFIG_BYTES, RoundRules, close_window_problem,
    scheduled_lr,
)
from fedchain.aggregator.relay import RelayQueue
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundInfo, RoundParams, RoundStatus
from fedchain.codec import decode_json, decode_tensors, encode_json, encode_tensors, load_arrays_into, state_dict_to_arrays
from fedchain.errors import BlobNotFound, ChainError, ConfigError, ContractRevert, RpcUnavailable
from fedchain.hashing import commitment
from fedchain.memory import release_freed_memory, reuse_freed_memory
from fedchain.store import BlobStore
from fedchain.strategy import get_strategy

REPORT_VERSION = 2
#: Longest wait between retries while the chain is unreachable.
MAX_BACKOFF = 10.0
#: Once t unmasking posts are on-chain, how long (seconds) the aggregator still waits for the others
#: by default (``--unmask-linger``): any t valid posts unmask the sum, more only add robustness.
UNMASK_LINGER = 0.1


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
    mode: str = "transparent"
    #: Wall time of the round, from opening it to its finalize/expire transaction (seconds).
    seconds: float | None = None
    #: When the round loop began this round (Unix time): the round period is the next one's minus this.
    started_at: float | None = None
    #: Secure rounds with DP noise: the accountant's total ε after this round (at ``delta``).
    epsilon: float | None = None
    delta: float | None = None

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
            "mode": self.mode,
            "seconds": self.seconds,
            "started_at": self.started_at,
            "epsilon": self.epsilon,
            "delta": self.delta,
        }


def genesis_model(task: Any, task_params: dict[str, Any], seed: int) -> tuple[bytes, str]:
    """The deterministic initial model for (task, params, seed): canonical bytes and hash."""
    model = task.build_model(task_params, seed)
    data = encode_tensors(state_dict_to_arrays(model))
    return data, commitment(data)


def build_config(
    *, task_spec: str, task_params: dict[str, Any], training: dict[str, Any], strategy: dict[str, Any],
    seed: int, round_id: int, min_updates: int, eval_seed: int, max_samples: int = DEFAULT_MAX_SAMPLES,
    max_update_bytes: int = DEFAULT_MAX_UPDATE_BYTES, relay_cutoff: int = 0, selection_rate: int = 0,
    update_access: str = "members", secure: dict[str, Any] | None = None, unmask_window: int = 0,
    privacy: dict[str, Any] | None = None, close_window: int = 0,
) -> dict[str, Any]:
    """A version-2 round config; :class:`RoundRules` checks it. ``secure`` (a SecureConfig's
    dict) makes it a secure-mode config, with ``unmask_window`` and ``privacy``."""
    config = {
        "version": CONFIG_VERSION,
        "round": round_id,
        "mode": "secure" if secure is not None else "transparent",
        "task": task_spec,
        "task_params": task_params,
        "training": training,
        "strategy": strategy,
        "seed": seed,
        "eval_seed": eval_seed,
        "min_updates": min_updates,
        "max_samples": max_samples,
        "selection_rate": selection_rate,
        "limits": {"max_update_bytes": max_update_bytes},
        "relay": {"cutoff_seconds": relay_cutoff},
        "blobs": {"updates": update_access},
    }
    if close_window:
        config["close_window"] = close_window
    if secure is not None:
        config["secure"] = secure
        config["unmask_window"] = unmask_window
        config["privacy"] = privacy or {}
    RoundRules.of(config)
    return config


#: After an upload arrives the round loop reads the chain every HOT_POLL seconds for HOT_SECONDS.
HOT_POLL, HOT_SECONDS = 0.1, 3.0
#: A secure round's commitment list is read and checked this many seconds (by this machine's clock)
#: before the deadline's second ends, and sealed as it ends. The seal names the count it checked
#: (``CommitmentsChanged`` otherwise), so a commitment that lands meanwhile costs one more read and
#: check, never an unchecked survivor.
SEAL_LEAD = 0.25
#: Seals refused for a changed list or a lagging chain clock before the round loop gives up.
SEAL_ATTEMPTS = 30
#: The longest a queued unmasking post waits for others to share its batch transaction (seconds).
UNMASK_BATCH_WAIT = 0.3


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
        max_blob_bytes: int = DEFAULT_MAX_UPDATE_BYTES,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        relay_cutoff: int = 5,
        close_window: int = 0,
        selection_rate: int = 0,
        update_access: str = "members",
        lr_schedule: dict[str, Any] | None = None,
        secure: Any = None,
        unmask_window: int = 10,
        unmask_linger: float = UNMASK_LINGER,
        privacy_budget: Any = None,
        privacy_delta: float = 1e-5,
        colluders: int = 0,
        relay: RelayQueue | None = None,
        censor: Sequence[str] = (),
        poll_interval: float = 0.5,
        uploads_lookup: Callable[[int, str], Sequence[str]] | None = None,
        on_sync: Callable[[], Any] | None = None,
        on_wait: Callable[[int, int, int, float], None] | None = None,
        on_status: Callable[[str, str | None], None] | None = None,
        on_event: Callable[[int, str], None] | None = None,
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
        self.max_samples = max_samples
        self.relay_cutoff = relay_cutoff
        self.close_window = int(close_window)
        problem = close_window_problem(self.close_window, self.relay_cutoff)
        if problem:
            raise ConfigError(problem, hint=f"--close-window {self.relay_cutoff + 1} or more, --relay-cutoff "
                                            f"{max(0, self.close_window - 1)} or less, or --close-window 0 (off)")
        self.selection_rate = selection_rate
        self.update_access = update_access
        self.lr_schedule = lr_schedule
        scheduled_lr(1.0, lr_schedule, 1)  # a bad schedule fails before any round opens
        #: Secure mode: a fedchain.aggregator.config.SecureSettings (None: transparent mode).
        self.secure = secure
        self.unmask_window = int(unmask_window)
        self.unmask_linger = float(unmask_linger)
        self.privacy_budget = privacy_budget
        self.privacy_delta = float(privacy_delta)
        self.colluders = int(secure.colluders if secure is not None else colluders)
        if secure is not None:
            from fedchain.aggregator.config import SECURE_STRATEGIES

            if strategy not in SECURE_STRATEGIES:
                raise ConfigError(
                    f"strategy {strategy!r} cannot run in secure mode: robust rules need each node's update, "
                    "which secure aggregation hides from everyone, the aggregator included",
                    hint="use --strategy fedavg with --mode secure, or --mode transparent for robust rules")
            if self.unmask_window < 1:
                raise ConfigError("the unmask window must be at least 1 second", hint="--unmask-window SECONDS")
        self.relay = relay
        #: Misbehaviour for tests of the direct-commit fallback: never relay these nodes.
        self.censor = {c.lower() for c in censor}
        self.poll = poll_interval
        self.uploads_lookup = uploads_lookup
        self.on_sync = on_sync
        #: progress while a round waits: (round, committed, expected, seconds to the deadline)
        self.on_wait = on_wait
        #: ("ok" | "degraded", detail) whenever the loop's health changes
        self.on_status = on_status
        #: (round, "open" | "sealed" | "finalized" | "expired") as soon as that transaction is mined:
        #: the API pushes it to the nodes (GET /events)
        self.on_event = on_event
        self.log = log
        self._status: tuple[str, str | None] = ("ok", None)

    def _set_status(self, state: str, detail: str | None = None) -> None:
        if (state, detail) != self._status:
            self._status = (state, detail)
            if self.on_status:
                self.on_status(state, detail)

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

    def _base_arrays(self, base_hash: str, max_bytes: int) -> dict[str, np.ndarray]:
        try:
            data = self.store.get(base_hash)
        except BlobNotFound as exc:
            raise self._missing_base(base_hash) from exc
        return decode_tensors(data, max_bytes=max_bytes)

    def _fetch(self, h: str) -> bytes | None:
        """A committed blob for a round's computation, or None if it was never uploaded. The
        store's ``get`` re-hashes it (HashMismatch for corrupted bytes), so the computation is told
        ``fetch_verified`` and does not hash it again."""
        return self.store.get(h) if self.store.has(h) else None

    def _config(self, config_hash: str) -> dict[str, Any]:
        return decode_json(self.store.get(config_hash), max_bytes=MAX_CONFIG_BYTES)

    # -- one round -----------------------------------------------------------------------------
    def open_round(self, *, min_updates: int, round_seconds: float) -> tuple[int, dict[str, Any]]:
        current = self.chain.current_round_id()
        if current:
            info = self.chain.get_round(current)
            if info.status == RoundStatus.OPEN and self.store.has(info.config_hash):
                # We opened it before a restart: pick it up where it is, nothing is lost.
                self.log(f"resuming round {current}, still open on-chain")
                return current, {"config": self._config(info.config_hash)}
            # Past deadline + grace the contract expires a stale open round itself in openRound.
            if info.status == RoundStatus.OPEN and self.chain.block_timestamp() <= info.deadline + self.chain.grace_period():
                raise ConfigError(
                    f"round {current} is still open on-chain and was not opened by this aggregator's store",
                    hint="wait for it to be finalized or expired (anyone may call expireRound after the grace period)",
                )
        base = self.chain.latest_model_hash()
        if not self.store.has(base):  # fail before opening a round nobody could train from
            raise self._missing_base(base)
        round_id = current + 1
        training = dict(self.training)
        if self.lr_schedule:
            training["lr"] = scheduled_lr(float(training.get("lr", 1e-3)), self.lr_schedule, round_id)
            training["lr_schedule"] = dict(self.lr_schedule)
        strategy = dict(self.strategy)
        round_seed = self.seed * 1_000_003 + round_id
        if "seed" in (strategy.get("params") or {}):
            # Rules with randomness (bucketing) draw it from the round's committed seed.
            strategy["params"] = {**strategy["params"], "seed": round_seed}
        if get_strategy(strategy["name"], strategy.get("params") or {}).stateful:
            state_hash = self._last_state_hash()
            if state_hash is not None:
                strategy["state_hash"] = state_hash
        secure_kw: dict[str, Any] = {}
        threshold = 0
        if self.secure is not None:
            state_hash = self._last_report_field("privacy_state_hash")
            secure = self._secure_config()
            self._check_budget(secure, state_hash, min_updates)
            secure_kw = {"secure": secure.to_dict(), "unmask_window": self.unmask_window,
                         "privacy": {"delta": self.privacy_delta, "colluders": self.colluders,
                                     "budget": (None if self.privacy_budget is None
                                                else float(self.privacy_budget)),
                                     "state_hash": state_hash}}
            threshold = secure.threshold
        config = build_config(
            task_spec=self.task_spec, task_params=self.task_params, training=training,
            strategy=strategy, seed=round_seed, round_id=round_id,
            min_updates=min_updates, eval_seed=self.seed, max_samples=self.max_samples,
            max_update_bytes=self.max_blob_bytes, relay_cutoff=self.relay_cutoff, close_window=self.close_window,
            selection_rate=self.selection_rate, update_access=self.update_access, **secure_kw,
        )
        config_hash = self.store.put(encode_json(config))
        rules = RoundRules.of(config)
        # The deadline is chain time: the contract judges it, never our clock.
        deadline = int(self.chain.block_timestamp() + round_seconds)
        params = RoundParams(deadline=deadline, min_updates=min_updates, max_samples=rules.max_samples,
                             selection_rate=rules.selection_rate, relay_cutoff=rules.relay_cutoff,
                             threshold=threshold, unmask_window=rules.unmask_window,
                             close_window=rules.close_window)
        rid, tx = self.chain.open_round(base, config_hash, params)
        self._event(rid, "open")
        return rid, {"config": config, "open_gas": tx.gas_used}

    def _event(self, rid: int, status: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(rid, status)
            except Exception as exc:  # noqa: BLE001 - a push is a hint; the round goes on without it
                self.log(f"[yellow]round {rid}: could not push the {status!r} event: {exc}[/]")

    def _last_report_field(self, key: str) -> str | None:
        """A hash the last finalized round's report names (None before the first round)."""
        last = self.chain.last_finalized_round_id()
        if last == 0:
            return None
        info = self.chain.get_round(last)
        if info.report_hash is None or not self.store.has(info.report_hash):
            raise ConfigError(f"the report of round {last} is not in this aggregator's store",
                              hint="point FEDCHAIN_DATA_DIR at the store that produced it")
        report = decode_json(self.store.get(info.report_hash), max_bytes=MAX_CONFIG_BYTES)
        h = report.get(key) if isinstance(report, dict) else None
        return h if isinstance(h, str) else None

    def _carried_privacy(self) -> str | None:
        """A transparent round carries the accountant state forward unchanged (it adds no noise,
        and the ε of the secure rounds before it still stands)."""
        try:
            return self._last_report_field("privacy_state_hash")
        except ConfigError:
            return None

    def _privacy_state(self, state_hash: str | None) -> dict[str, Any] | None:
        if state_hash is None:
            return None
        try:
            return decode_json(self.store.get(state_hash), max_bytes=MAX_CONFIG_BYTES)
        except BlobNotFound as exc:
            raise ConfigError(f"the privacy accountant state {state_hash} is not in the store",
                              hint="point FEDCHAIN_DATA_DIR at the store that produced it") from exc

    def _secure_config(self) -> Any:
        """This round's SecureConfig: t from the nodes eligible now, noise planned for t."""
        base = self._base_arrays(self.chain.latest_model_hash(), self.max_blob_bytes)
        dim = sum(int(v.size) for v in base.values())
        return self.secure.config_for(self.chain.node_count(), dim)

    def _check_budget(self, secure: Any, state_hash: str | None, min_updates: int) -> None:
        """Refuse (PrivacyBudgetExceeded) to open a round whose worst case would pass the budget:
        it is charged as if only max(t, quorum) nodes survived, the fewest that can finalize."""
        if self.privacy_budget is None:
            return
        from fedchain.privacy import PrivacyBudgetExceeded
        from fedchain.privacy.accountant import RoundPrivacy, ensure_within_budget, new_state

        if secure.noise is None:
            raise PrivacyBudgetExceeded(
                "a privacy budget is set but the secure config adds no DP noise: ε would be unbounded",
                epsilon=float("inf"), budget=float(self.privacy_budget), delta=self.privacy_delta,
                hint="set --noise-multiplier, or drop --privacy-budget")
        state = self._privacy_state(state_hash) or new_state(self.privacy_delta)
        base = self._base_arrays(self.chain.latest_model_hash(), self.max_blob_bytes)
        dim = sum(int(v.size) for v in base.values())
        worst = max(secure.threshold, min_updates)
        rp = RoundPrivacy.for_round(secure.fixed, dim, secure.noise, contributors=worst,
                                    colluders=self.colluders)
        ensure_within_budget(state, rp, {"epsilon": float(self.privacy_budget), "delta": self.privacy_delta})

    def _last_state_hash(self) -> str | None:
        """The server-optimiser state the last finalized round left (its report names it)."""
        last = self.chain.last_finalized_round_id()
        if last == 0:
            return None
        info = self.chain.get_round(last)
        if info.report_hash is None or not self.store.has(info.report_hash):
            raise ConfigError(f"the report of round {last} is not in this aggregator's store",
                              hint="a stateful strategy continues from the last round's state: point "
                                   "FEDCHAIN_DATA_DIR at the store that produced it")
        report = decode_json(self.store.get(info.report_hash), max_bytes=MAX_CONFIG_BYTES)
        h = report.get("server_state_hash") if isinstance(report, dict) else None
        return h if isinstance(h, str) else None

    def _state_in(self, config: dict[str, Any], max_bytes: int) -> dict[str, np.ndarray] | None:
        h = (config.get("strategy") or {}).get("state_hash")
        if not h:
            return None
        try:
            return decode_tensors(self.store.get(h), max_bytes=max_bytes)
        except BlobNotFound as exc:
            raise ConfigError(f"the strategy state {h} named by the round config is not in the store",
                              hint="point FEDCHAIN_DATA_DIR at the store that produced it") from exc

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if a node uploads or posts something for the relay meanwhile
        (True then)."""
        if self.relay is not None:
            return self.relay.arrived.wait(seconds)
        time.sleep(seconds)
        return False

    def relay_pending(self, round_id: int, relay_closes_at: int) -> int:
        """Relay queued signed commitments of ``round_id`` in one batch; returns how many were sent."""
        if self.relay is None:
            return 0
        return self._relay_batch(
            round_id, self.relay.take(round_id), relay_closes_at, what="commitment", fallback="commit",
            skipped_event="CommitmentSkipped",
            send=lambda es: self.chain.submit_batch(round_id, [(e.update_hash, e.num_samples, e.signature) for e in es]))

    def _relay_batch(self, round_id: int, entries: Sequence[Any], closes_at: int, *, what: str, fallback: str,
                     skipped_event: str, send: Callable[[Sequence[Any]], Any]) -> int:
        """Send the queued ``entries`` (less censored nodes) in one transaction unless the relay cut-off
        has passed; the contract skips the entries it cannot take. Returns how many were sent."""
        entries = [e for e in entries if e.node.lower() not in self.censor]
        if not entries:
            return 0
        if self.chain.block_timestamp() > closes_at:
            self.log(f"round {round_id}: {len(entries)} relayed {what}(s) arrived after the relay cut-off; "
                     f"their nodes {fallback} directly")
            return 0
        try:
            tx = send(entries)
        except ContractRevert as exc:
            self.log(f"round {round_id}: relay refused by the contract: {exc.name}; nodes fall back to direct "
                     f"{fallback}s")
            return 0
        skipped = [e for e in tx.events if e.name == skipped_event]
        self.log(f"round {round_id}: relayed {len(entries) - len(skipped)} {what}(s) in one batch "
                 f"(gas {tx.gas_used:,}" + (f", {len(skipped)} skipped" if skipped else "") + ")")
        return len(entries)

    def wait_for_commitments(self, round_id: int, *, seal_lead: float | None = None) -> bool:
        """Until every eligible node committed (the contract then allows an early close), or the
        deadline passed by chain time: True then. With ``seal_lead`` (a secure round, whose seal
        names the count it checked), False as soon as this machine's clock is ``seal_lead`` seconds
        from the end of the deadline's second: the caller checks the list and seals as it ends,
        without waiting for a block stamped past the deadline to be mined first.
        Relays queued commitments meanwhile. After an upload arrives the chain is read every 0.1 s
        for a few seconds (its direct commitment follows within a transaction's time), and so it
        is in the last second before the deadline; else every ``poll`` seconds."""
        hot_until = 0.0
        while True:
            info = self.chain.get_round(round_id)
            if self.relay_pending(round_id, info.relay_closes_at):
                info = self.chain.get_round(round_id)  # the batch changed it
            if info.may_close_early():
                return True
            now = self.chain.block_timestamp()
            if now > info.deadline:
                return True
            if seal_lead is not None and time.time() >= info.deadline + 1 - seal_lead:
                return False
            if self.on_wait:
                self.on_wait(round_id, info.commit_count, info.eligible_count, max(0.0, info.deadline - now))
            # Hot: an upload just arrived (its commitment follows), or the deadline (perhaps brought
            # forward by the close window) is a second of chain time away.
            hot = time.monotonic() < hot_until or info.deadline - now <= 1
            if self._pause(min(self.poll, HOT_POLL) if hot else self.poll):
                hot_until = time.monotonic() + HOT_SECONDS

    def run_round(self, *, min_updates: int, round_seconds: float) -> RoundSummary:
        rid, opened = self.open_round(min_updates=min_updates, round_seconds=round_seconds)
        config = opened["config"]
        rules = RoundRules.of(config)
        if "open_gas" in opened:
            self.log(f"round {rid} opened (deadline in {round_seconds:.0f} s of chain time, quorum {min_updates})")
        if rules.is_secure:
            closed = self.wait_for_commitments(rid, seal_lead=SEAL_LEAD)
            return self._run_secure(rid, config, opened, closed=closed)
        self.wait_for_commitments(rid)
        # The commit phase is over: the list cannot change any more. Read it at one block.
        info, commitments = self.chain.round_view(rid)
        base: dict[str, np.ndarray] | ModelShapes = self._base_arrays(info.base_model_hash, rules.max_update_bytes)
        if not reads_base_values(config):
            base = ModelShapes.of(base)  # FedAvg/FedProx: the round needs only the names and shapes
        uploads = (lambda node: self.uploads_lookup(rid, node)) if self.uploads_lookup else None
        ctx = RoundContext(self.chain.chain_id, self.chain.rounds_address, rid)
        reuse_freed_memory()  # one update blob after another: reuse the last one's pages (fedchain.memory)
        try:
            comp = compute_round(config, base, commitments, self._fetch, ctx, min_updates=info.min_updates,
                                 uploads=uploads, state=self._state_in(config, rules.max_update_bytes),
                                 fetch_verified=True)
        finally:
            del base
            release_freed_memory()
        gas = {"open": opened["open_gas"]} if "open_gas" in opened else {}
        if comp.model_hash is None:
            return self._expire(rid, info.deadline, comp, gas)
        return self._finalize(rid, info.base_model_hash, info.config_hash, config, comp, gas)

    # -- secure rounds -------------------------------------------------------------------------
    def _run_secure(self, rid: int, config: dict[str, Any], opened: dict[str, Any], *, closed: bool = True) -> RoundSummary:
        """Seal the commit phase (excluding committers whose masked blob is missing or malformed),
        wait for the survivors' unmasking posts, unmask the sum and merge it; or expire.
        ``closed``: the chain already showed the commit phase over (else this machine's clock said
        it is about to be: see :meth:`wait_for_commitments`)."""
        from fedchain.aggregator.secure_compute import (
            SecureRoundInputs, compute_secure_round, privacy_blob, seal_decisions,
        )

        rules = RoundRules.of(config)
        gas = {"open": opened["open_gas"]} if "open_gas" in opened else {}
        view = self.chain.secure_view(rid)
        info = view.info
        base = self._base_arrays(info.base_model_hash, rules.max_update_bytes)
        ctx = RoundContext(self.chain.chain_id, self.chain.rounds_address, rid)
        fetch = self._fetch
        uploads = (lambda node: self.uploads_lookup(rid, node)) if self.uploads_lookup else None
        selected = (view.selected, view.public_keys)
        for _ in range(SEAL_ATTEMPTS):
            decisions = seal_decisions(config, base, SecureRoundInputs.of(view), fetch, ctx, uploads=uploads,
                                       fetch_verified=True)
            exclusions = {d.node: d.reason or "" for d in decisions if not d.accepted}
            if view.phase.sealed:
                break
            outcome = self._seal(rid, view.info, sorted(exclusions), gas, closed=closed)
            if outcome == "too_few":
                comp = RoundComputation(decisions=decisions, details={
                    "error": f"{len(decisions) - len(exclusions)} valid masked update(s): too few survivors "
                             f"for threshold {rules.secure.threshold} and quorum {info.min_updates}"})
                return self._expire(rid, view.phase.unmask_deadline, comp, gas)
            if outcome == "sealed":
                self.log(f"round {rid}: commit phase sealed, {len(decisions) - len(exclusions)} survivor(s)"
                         + (f", {len(exclusions)} excluded" if exclusions else ""))
                break
            closed = True  # "again": the chain has shown the commit phase over; read the final list
            view = self.chain.secure_view(rid, selected=selected)
        else:
            raise ChainError(f"round {rid}: the seal was refused {SEAL_ATTEMPTS} times for a changed commitment list",
                             hint="is another process committing for this round's nodes? check the chain's logs")
        prev_hash = (rules.privacy or {}).get("state_hash")
        have = 0
        while True:
            # Any t valid posts remove the masks: try as soon as t are on-chain, and wait for more
            # only if those do not suffice (a bad post) and the unmask phase is still open.
            have = self.wait_for_unmasks(rid, enough=max(rules.secure.threshold, have + 1))
            view = self.chain.secure_view(rid, selected=selected)
            comp = compute_secure_round(config, base, SecureRoundInputs.of(view), fetch, ctx,
                                        min_updates=info.min_updates, exclusions=exclusions,
                                        prev_privacy=self._privacy_state(prev_hash), fetch_verified=True)
            phase = view.phase
            if (comp.model_hash is not None or phase.unmask_count >= phase.survivor_count
                    or self.chain.block_timestamp() > phase.unmask_deadline
                    or not str(comp.details.get("error", "")).startswith("unmask_failed")):
                break
        if comp.model_hash is None:
            return self._expire(rid, view.phase.unmask_deadline, comp, gas)
        extra: dict[str, Any] = {"secure": {**comp.details.get("secure", {}),
                                            "selected": list(view.selected),
                                            "excluded": sorted(exclusions, key=lambda a: int(a, 16)),
                                            "posts": [{"node": p.node, "unmask_hash": p.unmask_hash}
                                                      for p in view.posts],
                                            "weight_sum": comp.details.get("weight_sum")}}
        state = comp.details.pop("privacy_state", None)
        comp.details = {}
        if state is not None:
            data, h = privacy_blob(state)
            self.store.put(data, expected_hash=h)
            extra["privacy"] = state
            extra["privacy_state_hash"] = h
            self.log(f"round {rid}: ε = {state['epsilon']:.4g} after {len(state['rounds'])} round(s) "
                     f"at δ = {state['delta']:g} (this round {state['rounds'][-1]['epsilon']:.4g})")
        else:
            extra["privacy"] = None
            extra["privacy_state_hash"] = prev_hash
        return self._finalize(rid, info.base_model_hash, info.config_hash, config, comp, gas, extra)

    def _seal(self, rid: int, info: RoundInfo, excluded: list[str], gas: dict[str, int], *, closed: bool) -> str:
        """sealCommitments for the ``info.commit_count`` commitments just checked. Unless ``closed``
        (the chain showed the commit phase over), it is sent as this machine's clock passes the
        deadline's second: blocks are stamped with whole seconds, so the seal's block is past the
        deadline, and the contract still judges by its own clock.

        Returns "sealed"; "too_few" when too few survivors remain (the round can only expire); or
        "again" when the list must be read and checked once more: a commitment landed after it was
        read (``CommitmentsChanged``), or the chain's clock lags this machine's (``CommitPhaseOpen``;
        then only after the deadline has passed by chain time)."""
        if not closed and not info.may_close_early():
            time.sleep(max(0.0, info.deadline + 1 - time.time()))
            if self.relay_pending(rid, info.relay_closes_at):
                return "again"  # signed commitments queued meanwhile went on-chain: the list grew
        try:
            tx = self.chain.seal_commitments(rid, excluded, info.commit_count)
        except ContractRevert as exc:
            if exc.name == "TooFewSurvivors":
                return "too_few"
            if exc.name == "AlreadySealed":
                return "sealed"
            if exc.name == "CommitmentsChanged":
                self.log(f"round {rid}: a commitment landed after the list was checked "
                         f"({exc.args_dict.get('commitCount')} now, {info.commit_count} checked); checking again")
                return "again"
            if exc.name == "CommitPhaseOpen":
                self.wait_for_commitments(rid)  # by chain time: the chain's clock is behind ours
                return "again"
            raise
        gas["seal"] = tx.gas_used
        self._event(rid, "sealed")
        return "sealed"

    def wait_for_unmasks(self, round_id: int, enough: int | None = None) -> int:
        """Until ``enough`` unmasking posts are on-chain (default: every survivor's), every survivor
        posted, or the unmask deadline passed by chain time. Returns how many are on-chain."""
        info = self.chain.get_round(round_id)
        enough_since: float | None = None
        while True:
            phase = self.chain.unmask_phase(round_id)
            now = self.chain.block_timestamp()
            if self._unmask_batch_due(round_id, phase, enough, now - (phase.unmask_deadline - info.relay_cutoff)):
                if self.relay_unmasks(round_id, phase.unmask_deadline - info.relay_cutoff):
                    phase = self.chain.unmask_phase(round_id)
            if phase.unmask_count >= phase.survivor_count or now > phase.unmask_deadline:
                return phase.unmask_count
            if enough is not None and phase.unmask_count >= enough:
                # Enough to unmask; stragglers of the same moment (and relayed posts) get a second.
                enough_since = enough_since if enough_since is not None else time.monotonic()
                if time.monotonic() - enough_since >= self.unmask_linger:
                    return phase.unmask_count
            if self.on_wait:
                self.on_wait(round_id, phase.unmask_count, phase.survivor_count, max(0.0, phase.unmask_deadline - now))
            self._pause(min(self.poll, 0.1))  # short: the posts arrive within a second or two of the seal

    def _unmask_batch_due(self, round_id: int, phase: Any, enough: int | None, past_cutoff: float) -> bool:
        """Whether to relay the queued unmasking posts now: once they bring the on-chain count to
        what the round needs (``enough``, else every survivor), once the oldest has waited
        :data:`UNMASK_BATCH_WAIT`, or a second before the relay cut-off; so that ten posts
        arriving within half a second cost one transaction, not one per poll."""
        if self.relay is None:
            return False
        queued, waited = self.relay.unmask_backlog(round_id)
        if not queued:
            return False
        target = enough if enough is not None else phase.survivor_count
        return (phase.unmask_count + queued >= min(target, phase.survivor_count) or waited >= UNMASK_BATCH_WAIT
                or past_cutoff >= -1)

    def relay_unmasks(self, round_id: int, closes_at: int) -> int:
        """Relay queued unmasking posts in one ``submitUnmaskBatch``; returns how many were sent."""
        if self.relay is None:
            return 0
        return self._relay_batch(
            round_id, self.relay.take_unmasks(round_id), closes_at, what="unmasking post", fallback="post",
            skipped_event="UnmaskSkipped",
            send=lambda es: self.chain.submit_unmask_batch(round_id, [(e.unmask_hash, e.signature) for e in es]))

    def _metrics(self, model: dict[str, np.ndarray], config: dict[str, Any]) -> dict[str, float]:
        module = self.task.build_model(config["task_params"], self.model_seed)
        load_arrays_into(module, model)
        metrics = self.task.evaluate(module, None, seed=config["eval_seed"], params=config["task_params"])
        return {k: float(v) for k, v in metrics.items()}

    def _finalize(self, rid: int, base_hash: str, config_hash: str, config: dict[str, Any],
                  comp: RoundComputation, gas: dict[str, int], extra: dict[str, Any] | None = None) -> RoundSummary:
        assert comp.model_bytes is not None and comp.model_hash is not None and comp.model is not None
        self.store.put(comp.model_bytes, expected_hash=comp.model_hash)
        if comp.state_bytes is not None:
            self.store.put(comp.state_bytes, expected_hash=comp.state_hash)
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
            "strategy_details": comp.details,
            "server_state_hash": comp.state_hash,
            "accepted": len(comp.accepted),
            "rejected": len(comp.rejected),
            "metrics": metrics,
            "mode": RoundRules.of(config).mode,
            **(extra if extra is not None else {"privacy_state_hash": self._carried_privacy()}),
        }
        report_hash = self.store.put(encode_json(report))
        for attempt in range(30):
            try:
                tx = self.chain.finalize_round(rid, comp.model_hash, report_hash, len(comp.accepted))
                break
            except ContractRevert as exc:
                # Our view said the commit phase was over; the next block's time will agree.
                if exc.name != "CommitPhaseOpen" or attempt == 29:
                    raise
                time.sleep(1)
        gas["finalize"] = tx.gas_used
        self._event(rid, "finalized")
        if self.on_sync:
            self.on_sync()
        return RoundSummary(
            round=rid, status="finalized", global_model_hash=comp.model_hash, accepted=len(comp.accepted),
            rejected=len(comp.rejected), metrics=metrics, gas=gas, report_hash=report_hash,
            reasons={d.node: d.reason or "" for d in comp.rejected}, mode=report["mode"],
            epsilon=(report.get("privacy") or {}).get("epsilon"), delta=(report.get("privacy") or {}).get("delta"),
        )

    def _expire(self, rid: int, deadline: int, comp: RoundComputation, gas: dict[str, int]) -> RoundSummary:
        """Wait for ``deadline + grace`` (``deadline``: for a secure round, its unmask deadline), then expire."""
        grace = self.chain.grace_period()
        why = comp.details.get("error") or f"{len(comp.accepted)} valid update(s), below quorum"
        self.log(f"round {rid}: {why}; expiring after the grace period")
        while self.chain.block_timestamp() <= deadline + grace:
            time.sleep(min(1.0, self.poll * 2))
        for attempt in range(30):
            try:
                tx = self.chain.expire_round(rid)
                gas["expire"] = tx.gas_used
                self._event(rid, "expired")
                break
            except ContractRevert as exc:
                if exc.name == "RoundNotOpen":  # someone else expired it first: fine
                    break
                if exc.name != "ExpiryNotReached" or attempt == 29:
                    raise
                time.sleep(1)  # the next block's timestamp decides
        if self.on_sync:
            self.on_sync()
        return RoundSummary(
            round=rid, status="expired", global_model_hash=None, accepted=len(comp.accepted),
            rejected=len(comp.rejected), gas=gas, reasons={d.node: d.reason or "" for d in comp.rejected},
        )

    def run(self, *, rounds: int, min_updates: int, round_seconds: float,
            on_round: Callable[[RoundSummary], None] | None = None,
            sleep: Callable[[float], None] = time.sleep) -> list[RoundSummary]:
        """Run ``rounds`` rounds. An unreachable chain is retried with capped backoff (a round
        already opened is resumed, nothing is lost); the status is ``degraded`` meanwhile."""
        self._with_retries(self.ensure_genesis, "set up the genesis model", sleep)
        out = []
        while len(out) < rounds:
            started, started_at = time.monotonic(), time.time()
            summary = self._with_retries(
                lambda: self.run_round(min_updates=min_updates, round_seconds=round_seconds), "run a round", sleep)
            summary.seconds = round(time.monotonic() - started, 3)
            summary.started_at = round(started_at, 3)
            out.append(summary)
            if on_round:
                on_round(summary)
        return out

    def _with_retries(self, fn: Callable[[], Any], what: str, sleep: Callable[[float], None]) -> Any:
        delay = 0.5
        while True:
            try:
                result = fn()
                self._set_status("ok")
                return result
            except (RpcUnavailable, ChainError) as exc:
                if isinstance(exc, ContractRevert):
                    raise
                self._set_status("degraded", f"cannot {what}: {exc.message}")
                self.log(f"[yellow]cannot {what}: {exc.message}; retrying in {delay:.1f} s[/]")
                sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)
