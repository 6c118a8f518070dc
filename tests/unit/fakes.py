"""An in-memory chain that implements :class:`fedchain.chain.types.ChainReader`.

``FakeChain`` mimics ``TrainingRounds`` v2 (which includes the node registry): every write mines
one block, emits the same events (same names, same argument names and encodings) as the contract,
keeps a receipt with a gas figure, and reverts with :class:`ContractRevert` named like the Solidity
custom errors. Eligibility (joined before the round opened), the sample cap, the accumulator and
the early-close and close-window rules follow the contract; ``tests/e2e/test_fake_parity.py``
runs the same scenario on both (the real contract on anvil) and compares events, reverts and rounds.
Set ``chain.down = True`` to make every read raise :class:`RpcUnavailable`, as a dead RPC does.

Usable by any unit test:

    chain = FakeChain()
    chain.admit_node(node.address)
    chain.set_genesis_model(model_hash)
    rid = chain.open_round(model_hash, config_hash, deadline=2_000_000_000, min_updates=1)  # max_samples=...
    chain.submit_update(rid, node.address, update_hash, 100)
    chain.finalize_round(rid, new_hash, report_hash, accepted=1)
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils import to_checksum_address

from fedchain.chain import accumulator
from fedchain.chain.types import Commitment, EventRecord, RoundInfo, RoundParams, RoundStatus, SkipReason, TxResult
from fedchain.errors import ContractRevert, NotFound, RpcUnavailable

ZERO_HASH = "0x" + "00" * 32
ADMIN = to_checksum_address("0x" + "ad" * 20)
AGGREGATOR = to_checksum_address("0x" + "a6" * 20)

#: Gas figures the fake charges (anything plausible; tests compare the index against receipts).
GAS = {
    "NodeAdmitted": 120_000,
    "NodeRemoved": 40_000,
    "NodeUpdated": 50_000,
    "GenesisModelSet": 47_000,
    "RoundOpened": 140_000,
    "UpdateSubmitted": 95_000,
    "RoundFinalized": 80_000,
    "RoundExpired": 45_000,
}


@dataclass
class _Node:
    active: bool
    joined_at: int
    metadata_hash: str
    public_key: bytes
    joined_round: int = 0
    last_committed_round: int = 0


@dataclass
class _Tx:
    result: TxResult
    logs: list[EventRecord] = field(default_factory=list)


class FakeChain:
    """A deterministic in-memory fedchain deployment (one TrainingRounds + one NodeRegistry)."""

    def __init__(
        self,
        *,
        chain_id: int = 31337,
        rounds_address: str = "0x" + "52" * 20,
        registry_address: str | None = None,
        deploy_block: int = 5,
        grace_period: int = 60,
        genesis_salt: str = "",
    ) -> None:
        self.chain_id = chain_id
        self.rounds_address = to_checksum_address(rounds_address)
        # v2: the registry is part of TrainingRounds (same address).
        self.registry_address = to_checksum_address(registry_address or rounds_address)
        self.deploy_block = deploy_block
        self.grace_period = grace_period
        self.rpc_url = "http://fake-chain"
        #: When True every ChainReader call raises RpcUnavailable.
        self.down = False
        self.now = 1_700_000_000  # block timestamp, seconds
        self._block = deploy_block
        self._log: list[EventRecord] = []
        self._txs: dict[str, _Tx] = {}
        self._nodes: dict[str, _Node] = {}
        self._rounds: dict[int, RoundInfo] = {}
        #: Every version of every round, by the block that wrote it (for reads at a block).
        self._history: dict[int, list[tuple[int, RoundInfo]]] = {}
        self._commitments: dict[tuple[int, str], Commitment] = {}
        self._genesis: str | None = None
        self._lock = threading.RLock()
        self.calls: dict[str, int] = {}
        #: (first block, salt) of each fork: a block's hash covers the salts of the forks at or
        #: below it, so a revert (or another genesis_salt: a restarted chain) changes the hashes.
        self._forks: list[tuple[int, str]] = [(0, genesis_salt)] if genesis_salt else []
        self._fork_seq = 0

    # -- helpers -------------------------------------------------------------------------------
    def _read(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.down:
            raise RpcUnavailable(self.rpc_url, "connection refused")

    def _mine(self, events: list[tuple[str, str, dict[str, Any]]]) -> TxResult:
        """One transaction in a new block, emitting ``events`` [(name, contract, args)]."""
        with self._lock:
            self._block += 1
            self.now += 12
            tx_hash = "0x" + hashlib.sha256(f"{self.chain_id}:{self._block}:{events!r}".encode()).hexdigest()
            recs = [
                EventRecord(
                    name=name,
                    contract=contract,
                    args=dict(args),
                    block_number=self._block,
                    tx_hash=tx_hash,
                    log_index=i,
                )
                for i, (name, contract, args) in enumerate(events)
            ]
            gas = 21_000 + sum(GAS.get(name, 30_000) for name, _, _ in events)
            res = TxResult(tx_hash=tx_hash, block_number=self._block, gas_used=gas, events=recs)
            self._txs[tx_hash] = _Tx(res, recs)
            self._log.extend(recs)
            return res

    def warp_past(self, round_id: int, *, grace: bool = False) -> None:
        """Move chain time past round ``round_id``'s deadline (and its grace period if ``grace``),
        as ``evm_increaseTime`` does: the next block is mined after it."""
        r = self._rounds[round_id]
        self.now = max(self.now, r.deadline + (self._grace() if grace else 0) + 1)

    def mine_empty(self, n: int = 1) -> None:
        """Advance the chain by n blocks without transactions."""
        with self._lock:
            self._block += n
            self.now += 12 * n

    @staticmethod
    def _revert(name: str, function: str, **args: Any) -> ContractRevert:
        return ContractRevert(name, args, function=function)

    # -- NodeRegistry writes -------------------------------------------------------------------
    def admit_node(
        self, node: str, public_key: bytes = b"", metadata_hash: str = ZERO_HASH, *, by: str = ADMIN
    ) -> TxResult:
        node = to_checksum_address(node)
        cur = self._nodes.get(node)
        if cur is not None and cur.active:
            raise self._revert("NodeAlreadyActive", "admitNode", node=node)
        res = self._mine(
            [
                (
                    "NodeAdmitted",
                    "NodeRegistry",
                    {
                        "node": node,
                        "admittedBy": to_checksum_address(by),
                        "metadataHash": metadata_hash,
                        "publicKey": "0x" + bytes(public_key).hex(),
                    },
                )
            ]
        )
        last = cur.last_committed_round if cur is not None else 0
        self._nodes[node] = _Node(True, res.block_number, metadata_hash, bytes(public_key), len(self._rounds), last)
        return res

    def remove_node(self, node: str, *, by: str = ADMIN) -> TxResult:
        node = to_checksum_address(node)
        cur = self._nodes.get(node)
        if cur is None or not cur.active:
            raise self._revert("NodeNotActive", "removeNode", node=node)
        res = self._mine([("NodeRemoved", "NodeRegistry", {"node": node, "removedBy": to_checksum_address(by)})])
        cur.active = False
        return res

    def update_node(self, node: str, public_key: bytes, metadata_hash: str) -> TxResult:
        node = to_checksum_address(node)
        cur = self._nodes.get(node)
        if cur is None or not cur.active:
            raise self._revert("NodeNotActive", "updateNode", node=node)
        res = self._mine(
            [
                (
                    "NodeUpdated",
                    "NodeRegistry",
                    {"node": node, "metadataHash": metadata_hash, "publicKey": "0x" + bytes(public_key).hex()},
                )
            ]
        )
        cur.metadata_hash = metadata_hash
        cur.public_key = bytes(public_key)
        return res

    # -- TrainingRounds writes -----------------------------------------------------------------
    def set_genesis_model(self, model_hash: str) -> TxResult:
        if self._genesis is not None or self._rounds:
            raise self._revert("GenesisAlreadySet", "setGenesisModel")
        res = self._mine([("GenesisModelSet", "TrainingRounds", {"modelHash": model_hash})])
        self._genesis = model_hash
        return res

    def _latest_model(self) -> str | None:
        for rid in sorted(self._rounds, reverse=True):
            r = self._rounds[rid]
            if r.status == RoundStatus.FINALIZED:
                return r.global_model_hash
        return self._genesis

    def _grace(self) -> int:
        g = self.grace_period
        return int(g() if callable(g) else g)

    def _set_round(self, r: RoundInfo) -> None:
        self._rounds[r.round_id] = r
        self._history.setdefault(r.round_id, []).append((self._block, r))

    def open_round(
        self, base_model_hash: str, config_hash: str, params: RoundParams | int | None = None,
        min_updates: int = 1, *, deadline: int | None = None, max_samples: int = 2**64 - 1,
        selection_rate: int = 0, relay_cutoff: int = 0, close_window: int = 0,
    ) -> int:
        """``openRound``. Takes a :class:`RoundParams`, or the deadline and the rest as arguments."""
        if isinstance(params, RoundParams):
            p = params
        else:
            p = RoundParams(deadline=int(params if params is not None else deadline), min_updates=min_updates,
                            max_samples=max_samples, selection_rate=selection_rate, relay_cutoff=relay_cutoff,
                            close_window=close_window)
        if p.close_window and p.close_window <= p.relay_cutoff:
            raise self._revert("InvalidCloseWindow", "openRound", closeWindow=p.close_window,
                               relayCutoff=p.relay_cutoff)
        if p.min_updates == 0:
            raise self._revert("InvalidMinUpdates", "openRound", minUpdates=p.min_updates)
        if p.max_samples == 0:
            raise self._revert("InvalidMaxSamples", "openRound", maxSamples=p.max_samples)
        eligible = sum(1 for n in self._nodes.values() if n.active)
        if p.selection_rate == 0 and eligible < p.min_updates:
            raise self._revert("QuorumUnreachable", "openRound", eligibleCount=eligible, minUpdates=p.min_updates)
        cur = self._rounds.get(len(self._rounds))
        if cur is not None and cur.status == RoundStatus.OPEN:
            if self.now + 12 <= cur.deadline + self._grace():
                raise self._revert("RoundStillOpen", "openRound", roundId=cur.round_id)
            self.expire_round(cur.round_id, by=AGGREGATOR)
        if self._genesis is None:
            raise self._revert("GenesisNotSet", "openRound")
        if base_model_hash != self._latest_model():
            raise self._revert("BaseModelMismatch", "openRound", expected=self._latest_model(), given=base_model_hash)
        rid = len(self._rounds) + 1
        seed = ("0x" + hashlib.sha256(f"seed:{rid}:{self._block}".encode()).hexdigest()) if p.selection_rate else ZERO_HASH
        res = self._mine(
            [
                (
                    "RoundOpened",
                    "TrainingRounds",
                    {
                        "roundId": rid,
                        "baseModelHash": base_model_hash,
                        "configHash": config_hash,
                        "params": p.as_tuple(),
                        "eligibleCount": eligible,
                        "seed": seed,
                    },
                )
            ]
        )
        self._set_round(RoundInfo(
            round_id=rid,
            base_model_hash=base_model_hash,
            config_hash=config_hash,
            global_model_hash=None,
            report_hash=None,
            deadline=p.deadline,
            opened_at=res.block_number,
            closed_at=0,
            min_updates=p.min_updates,
            commit_count=0,
            accepted_count=0,
            status=RoundStatus.OPEN,
            eligible_count=eligible,
            max_samples=p.max_samples,
            selection_rate=p.selection_rate,
            relay_cutoff=p.relay_cutoff,
            close_window=p.close_window,
            accumulator=accumulator.initial(self.chain_id, self.rounds_address, rid),
            seed=seed,
        ))
        return rid

    def _open(self, rid: int, function: str) -> RoundInfo:
        r = self._rounds.get(rid)
        if r is None:
            raise self._revert("UnknownRound", function, roundId=rid)
        if r.status != RoundStatus.OPEN:
            raise self._revert("RoundNotOpen", function, roundId=rid)
        return r

    def _selected(self, r: RoundInfo, node: str) -> bool:
        if not r.sampled:
            return True
        from eth_abi import encode
        from eth_utils import keccak

        h = keccak(encode(["bytes32", "address"], [bytes.fromhex(r.seed[2:]), node]))
        return int.from_bytes(h, "big") >> 192 < r.selection_rate

    def _skip_reason(self, r: RoundInfo, node: str, update_hash: str, num_samples: int) -> SkipReason:
        if update_hash == ZERO_HASH:
            return SkipReason.ZERO_HASH
        if num_samples == 0:
            return SkipReason.ZERO_SAMPLES
        if num_samples > r.max_samples:
            return SkipReason.TOO_MANY_SAMPLES
        n = self._nodes.get(node)
        if n is not None and n.last_committed_round == r.round_id:
            return SkipReason.ALREADY_SUBMITTED
        if n is None or not n.active or n.joined_round >= r.round_id or not self._selected(r, node):
            return SkipReason.NOT_ELIGIBLE
        return SkipReason.NONE

    def _commit(self, r: RoundInfo, node: str, update_hash: str, num_samples: int) -> RoundInfo:
        self._nodes[node].last_committed_round = r.round_id
        self._commitments[(r.round_id, node)] = Commitment(r.round_id, node, update_hash, num_samples)
        return replace(r, commit_count=r.commit_count + 1,
                       accumulator=accumulator.step(r.accumulator, node, update_hash, num_samples))

    def _bring_forward(self, before: RoundInfo, after: RoundInfo,
                       events: list[tuple[str, str, dict[str, Any]]]) -> RoundInfo:
        """The contract's close window: the commitment(s) taking the count to ``min_updates`` set
        the deadline to min(deadline, block time + close_window - 1), with ``DeadlineBroughtForward``."""
        if not (after.close_window and before.commit_count < after.min_updates <= after.commit_count):
            return after
        closes = self.now + 12 + after.close_window - 1  # the block about to be mined opens the window
        if closes >= after.deadline:
            return after
        events.append(("DeadlineBroughtForward", "TrainingRounds", {"roundId": after.round_id, "deadline": closes}))
        return replace(after, deadline=closes)

    def submit_update(self, round_id: int, node: str, update_hash: str, num_samples: int) -> TxResult:
        node = to_checksum_address(node)
        r = self._open(round_id, "submitUpdate")
        if self.now + 12 > r.deadline:
            raise self._revert("DeadlinePassed", "submitUpdate", roundId=round_id, deadline=r.deadline)
        reason = self._skip_reason(r, node, update_hash, num_samples)
        if reason == SkipReason.ZERO_HASH:
            raise self._revert("ZeroHash", "submitUpdate")
        if reason == SkipReason.ZERO_SAMPLES:
            raise self._revert("ZeroSamples", "submitUpdate")
        if reason == SkipReason.TOO_MANY_SAMPLES:
            raise self._revert("TooManySamples", "submitUpdate", roundId=round_id, numSamples=num_samples,
                               maxSamples=r.max_samples)
        if reason == SkipReason.ALREADY_SUBMITTED:
            raise self._revert("AlreadySubmitted", "submitUpdate", roundId=round_id, node=node)
        if reason == SkipReason.NOT_ELIGIBLE:
            raise self._revert("NotEligible", "submitUpdate", roundId=round_id, node=node)
        events: list[tuple[str, str, dict[str, Any]]] = [
            ("UpdateSubmitted", "TrainingRounds",
             {"roundId": round_id, "node": node, "updateHash": update_hash, "numSamples": num_samples})]
        after = self._bring_forward(r, self._commit(r, node, update_hash, num_samples), events)
        res = self._mine(events)
        self._set_round(after)
        return res

    def submit_batch(self, round_id: int, signed: list[tuple[str, int, str]]) -> TxResult:
        """``submitBatch``: ``signed`` as ChainClient takes it, [(update_hash, num_samples, compact_sig)]."""
        from fedchain.auth import recover_commitment_signer
        from fedchain.errors import AuthError

        r = self._open(round_id, "submitBatch")
        closes = r.deadline - r.relay_cutoff if r.relay_cutoff < r.deadline else 0
        if self.now + 12 > closes:
            raise self._revert("RelayClosed", "submitBatch", roundId=round_id, closedAt=closes)
        events: list[tuple[str, str, dict[str, Any]]] = []
        before = r
        for update_hash, num_samples, sig in signed:
            try:
                node = recover_commitment_signer(sig, self.chain_id, self.rounds_address, round_id, update_hash,
                                                 num_samples)
                reason = self._skip_reason(r, node, update_hash, num_samples)
            except AuthError:
                node, reason = to_checksum_address("0x" + "00" * 20), SkipReason.INVALID_SIGNATURE
            if reason != SkipReason.NONE:
                events.append(("CommitmentSkipped", "TrainingRounds",
                               {"roundId": round_id, "node": node, "reason": int(reason)}))
                continue
            r = self._commit(r, node, update_hash, num_samples)
            events.append(("UpdateSubmitted", "TrainingRounds",
                           {"roundId": round_id, "node": node, "updateHash": update_hash, "numSamples": num_samples}))
        r = self._bring_forward(before, r, events)
        res = self._mine(events)
        self._set_round(r)
        return res

    def finalize_round(self, round_id: int, model_hash: str, report_hash: str, accepted: int) -> TxResult:
        r = self._open(round_id, "finalizeRound")
        if accepted < r.min_updates:
            raise self._revert(
                "QuorumNotReached", "finalizeRound", roundId=round_id, acceptedCount=accepted, minUpdates=r.min_updates
            )
        if accepted > r.commit_count:
            raise self._revert(
                "AcceptedExceedsCommitments",
                "finalizeRound",
                roundId=round_id,
                acceptedCount=accepted,
                commitCount=r.commit_count,
            )
        if self.now + 12 <= r.deadline and not r.may_close_early():
            raise self._revert("CommitPhaseOpen", "finalizeRound", roundId=round_id, commitCount=r.commit_count,
                               eligibleCount=r.eligible_count, deadline=r.deadline)
        res = self._mine(
            [
                (
                    "RoundFinalized",
                    "TrainingRounds",
                    {
                        "roundId": round_id,
                        "globalModelHash": model_hash,
                        "reportHash": report_hash,
                        "acceptedCount": accepted,
                    },
                )
            ]
        )
        self._set_round(replace(
            r,
            global_model_hash=model_hash,
            report_hash=report_hash,
            accepted_count=accepted,
            closed_at=res.block_number,
            status=RoundStatus.FINALIZED,
        ))
        return res

    def expire_round(self, round_id: int, *, by: str = ADMIN) -> TxResult:
        r = self._open(round_id, "expireRound")
        if self.now + 12 <= r.deadline + self._grace() and by != AGGREGATOR:
            raise self._revert("ExpiryNotReached", "expireRound", roundId=round_id,
                               expiresAt=r.deadline + self.grace_period)
        res = self._mine(
            [("RoundExpired", "TrainingRounds", {"roundId": round_id, "expiredBy": to_checksum_address(by)})]
        )
        self._set_round(replace(r, closed_at=res.block_number, status=RoundStatus.EXPIRED))
        return res

    # -- ChainReader ---------------------------------------------------------------------------
    def block_number(self) -> int:
        self._read("block_number")
        return self._block

    def block_timestamp(self, block: int | None = None) -> int:
        self._read("block_timestamp")
        return self.now

    def block_hash(self, block: int) -> str | None:
        self._read("block_hash")
        if block > self._block:
            return None
        salt = "".join(f":{s}" for first, s in self._forks if first <= block)
        return "0x" + hashlib.sha256(f"{self.chain_id}:block:{block}{salt}".encode()).hexdigest()

    # -- reorganisations (as anvil's evm_snapshot / evm_revert) --------------------------------
    _STATE = ("_block", "now", "_log", "_txs", "_nodes", "_rounds", "_history", "_commitments", "_genesis", "_forks")

    def snapshot(self) -> dict[str, Any]:
        """The whole chain state, for :meth:`revert`."""
        import copy

        with self._lock:
            return copy.deepcopy({k: getattr(self, k) for k in self._STATE})

    def revert(self, snap: dict[str, Any]) -> None:
        """Back to ``snap``: later blocks, events, receipts and state are gone, and the blocks
        mined from now on get hashes no earlier branch had (a reorganisation)."""
        import copy

        with self._lock:
            for k, v in copy.deepcopy(snap).items():
                setattr(self, k, v)
            self._fork_seq += 1
            self._forks.append((self._block + 1, f"fork{self._fork_seq}"))

    def current_round_id(self, block: int | None = None) -> int:
        self._read("current_round_id")
        if block is None:
            return len(self._rounds)
        return sum(1 for h in self._history.values() if h[0][0] <= block)

    def get_round(self, round_id: int, block: int | None = None) -> RoundInfo:
        self._read("get_round")
        versions = [r for b, r in self._history.get(round_id, []) if block is None or b <= block]
        if not versions:
            raise NotFound(f"round {round_id} does not exist on chain {self.chain_id}")
        return replace(versions[-1], block=block)

    def round_view(self, round_id: int) -> tuple[RoundInfo, list[Commitment]]:
        block = self.block_number()
        info = self.get_round(round_id, block)
        return info, self.commitments(round_id, block, info=info)

    def commitments(self, round_id: int, block: int | None = None, *, info: RoundInfo | None = None) -> list[Commitment]:
        self._read("commitments")
        info = info or self.get_round(round_id, block)
        last = info.block if info.block is not None else self._block
        return [
            Commitment(round_id, e.args["node"], e.args["updateHash"], int(e.args["numSamples"]))
            for e in self._log
            if e.name == "UpdateSubmitted" and e.args["roundId"] == round_id and e.block_number <= last
        ]

    def has_committed(self, round_id: int, node: str) -> bool:
        self._read("has_committed")
        n = self._nodes.get(to_checksum_address(node))
        return bool(n and round_id and n.last_committed_round == round_id)

    def is_eligible(self, round_id: int, node: str) -> bool:
        self._read("is_eligible")
        r = self._rounds.get(round_id)
        if r is None:
            raise self._revert("UnknownRound", "isEligible", roundId=round_id)
        n = self._nodes.get(to_checksum_address(node))
        return bool(n and n.active and n.joined_round < round_id and self._selected(r, to_checksum_address(node)))

    def get_commitment(self, round_id: int, node: str) -> Commitment | None:
        self._read("get_commitment")
        return self._commitments.get((round_id, to_checksum_address(node)))

    def is_active_node(self, address: str) -> bool:
        self._read("is_active_node")
        n = self._nodes.get(to_checksum_address(address))
        return bool(n and n.active)

    def grant_role(self, role_name: str, address: str) -> None:
        """``AccessControl.grantRole`` for any role name (e.g. ``AUDITOR_ROLE``); mines nothing."""
        self.__dict__.setdefault("_roles", set()).add((role_name, to_checksum_address(address)))

    def has_role(self, role_name: str, address: str) -> bool:
        self._read("has_role")
        return (role_name, to_checksum_address(address)) in self.__dict__.get("_roles", set())

    def node_count(self) -> int:
        self._read("node_count")
        return sum(1 for n in self._nodes.values() if n.active)

    def last_finalized_round_id(self) -> int:
        self._read("last_finalized_round_id")
        done = [rid for rid, r in self._rounds.items() if r.status == RoundStatus.FINALIZED]
        return max(done, default=0)

    def latest_model_hash(self) -> str:
        self._read("latest_model_hash")
        return self._latest_model() or ZERO_HASH

    def genesis_model_hash(self) -> str | None:
        self._read("genesis_model_hash")
        return self._genesis

    def events(self, from_block: int, to_block: int | None = None, **_: Any) -> list[EventRecord]:
        self._read("events")
        last = self._block if to_block is None else to_block
        out = [e for e in self._log if from_block <= e.block_number <= last]
        return sorted(out, key=lambda e: (e.block_number, e.log_index))

    def receipt(self, tx_hash: str) -> TxResult:
        self._read("receipt")
        tx = self._txs.get(tx_hash)
        if tx is None:
            raise NotFound(f"no receipt for transaction {tx_hash}")
        return tx.result


# ------------------------------------------------------------------------------------------------
# An API test world: FakeChain + FilesystemStore + SQLite index + app + TestClient.
# ------------------------------------------------------------------------------------------------
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

with warnings.catch_warnings():  # starlette's "use httpx2" notice, raised on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

FAR_DEADLINE = 2_000_000_000


def account(i: int) -> LocalAccount:
    """Deterministic test key number ``i`` (>= 1)."""
    return Account.from_key(int(i).to_bytes(32, "big"))


def model_tensors(scale: float = 1.0) -> dict[str, np.ndarray]:
    """A tiny two-tensor model; ``scale`` changes the values, never the names or shapes."""
    return {
        "layer.bias": np.full(3, 0.5 * scale, dtype=np.float32),
        "layer.weight": (np.arange(6, dtype=np.float32).reshape(2, 3) * scale),
    }


def model_bytes(scale: float = 1.0) -> bytes:
    from fedchain.codec import encode_tensors

    return encode_tensors(model_tensors(scale))


@dataclass
class World:
    chain: FakeChain
    store: Any
    settings: Any
    indexer: Any
    app: Any
    client: TestClient
    nodes: list[LocalAccount]
    tmp: Path
    #: hash of the latest model (genesis, then each finalized round's model)
    model_hash: str = ""

    # -- uploads -------------------------------------------------------------------------------
    def sign(
        self,
        node: LocalAccount,
        round_id: int,
        blob_hash: str,
        *,
        chain_id: int | None = None,
        contract: str | None = None,
    ) -> str:
        from fedchain.auth import sign_upload

        return sign_upload(
            node,
            self.chain.chain_id if chain_id is None else chain_id,
            self.chain.rounds_address if contract is None else contract,
            round_id,
            blob_hash,
        )

    def put(
        self,
        round_id: int,
        data: bytes,
        node: LocalAccount | None = None,
        *,
        blob_hash: str | None = None,
        signature: str | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """PUT an update; by default named by its commitment and signed by nodes[0]."""
        from fedchain.hashing import commitment

        node = node or self.nodes[0]
        h = blob_hash or commitment(data)
        hdrs = {"Content-Type": "application/octet-stream", **(headers or {})}
        if signed:
            hdrs["X-Fedchain-Signature"] = signature or self.sign(node, round_id, h)
        return self.client.put(f"/rounds/{round_id}/updates/{h}", content=data, headers=hdrs)

    # -- rounds --------------------------------------------------------------------------------
    def open_round(self, min_updates: int = 1, deadline: int | None = None) -> int:
        """Open a round (deadline: an hour of chain time from now unless given)."""
        from fedchain.codec import encode_json

        deadline = self.chain.now + 3600 if deadline is None else deadline
        config_hash = self.store.put(encode_json({"strategy": {"name": "fedavg", "params": {}}, "round_seq": len(self.chain._rounds)}))
        return self.chain.open_round(self.model_hash, config_hash, deadline, min_updates)

    def report(
        self,
        round_id: int,
        model_hash: str,
        decisions: list[tuple[LocalAccount, str, int, bool, str | None, float]],
        metrics: dict[str, float] | None = None,
    ) -> bytes:
        """Round report bytes, as the aggregator writes them."""
        from fedchain.codec import encode_json

        info = self.chain._rounds[round_id]
        ups = [
            {"node": n.address, "update_hash": h, "num_samples": s, "accepted": a, "reason": r, "weight": w}
            for n, h, s, a, r, w in decisions
        ]
        return encode_json(
            {
                "version": 1,
                "round": round_id,
                "chain_id": self.chain.chain_id,
                "contract": self.chain.rounds_address,
                "base_model_hash": info.base_model_hash,
                "config_hash": info.config_hash,
                "global_model_hash": model_hash,
                "strategy": {"name": "fedavg", "params": {}},
                "updates": ups,
                "accepted": sum(1 for d in decisions if d[3]),
                "rejected": sum(1 for d in decisions if not d[3]),
                "metrics": metrics if metrics is not None else {"rmse": 4.2, "max_abs_error": 10.1},
            }
        )

    def run_round(
        self,
        accepted: list[bool] | None = None,
        *,
        store_report: bool = True,
        metrics: dict[str, float] | None = None,
    ) -> tuple[int, bytes]:
        """Open a round, commit one update per entry of ``accepted`` (nodes in order), finalize
        with a report. Returns (round id, report bytes)."""
        accepted = [True] if accepted is None else accepted
        rid = self.open_round(min_updates=max(1, sum(accepted)))
        decisions = []
        for i, ok in enumerate(accepted):
            node = self.nodes[i]
            blob = model_bytes(1.0 + rid + i / 10)
            h = self.store.put(blob)
            self.chain.submit_update(rid, node.address, h, 100 * (i + 1))
            decisions.append(
                (node, h, 100 * (i + 1), ok, None if ok else "non_finite: tensor 'x' has NaN", 0.0 if not ok else 1.0)
            )
        total = sum(d[2] for d in decisions if d[3])
        decisions = [(n, h, s, a, r, (s / total if a else 0.0)) for n, h, s, a, r, _ in decisions]
        new_model = model_bytes(float(rid + 1))
        new_hash = self.store.put(new_model)
        report = self.report(rid, new_hash, decisions, metrics)
        report_hash = commitment_of(report)
        if store_report:
            self.store.put(report)
        self.chain.warp_past(rid)  # an early close needs every eligible node: not this scenario's point
        self.chain.finalize_round(rid, new_hash, report_hash, sum(accepted))
        self.model_hash = new_hash
        return rid, report


def commitment_of(data: bytes) -> str:
    from fedchain.hashing import commitment

    return commitment(data)


def make_world(
    tmp_path: Path,
    *,
    n_nodes: int = 3,
    max_blob_bytes: int = 64 * 1024,
    open_round: bool = True,
    background_sync: bool = False,
    poll_interval: float = 0.05,
    chain: FakeChain | None = None,
) -> World:
    """A chain with ``n_nodes`` admitted nodes and a stored genesis model; round 1 open by default."""
    from fedchain.api import create_app
    from fedchain.index import Indexer
    from fedchain.settings import Settings
    from fedchain.store import FilesystemStore

    chain = chain or FakeChain()
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    settings = Settings(
        data_dir=tmp_path / "data",
        db_url=f"sqlite:///{tmp_path / 'data' / 'index.sqlite'}",
        max_blob_bytes=max_blob_bytes,
        poll_interval=poll_interval,
    )
    nodes = [account(i + 1) for i in range(n_nodes)]
    for i, n in enumerate(nodes):
        chain.admit_node(n.address, public_key=bytes([i + 1]) * 33, metadata_hash="0x" + f"{i + 1:02x}" * 32)
    genesis = store.put(model_bytes(1.0))
    chain.set_genesis_model(genesis)
    indexer = Indexer(chain, store, settings.resolved_db_url(), max_json_bytes=settings.max_json_bytes)
    app = create_app(settings, chain=chain, store=store, indexer=indexer, background_sync=background_sync)
    client = TestClient(app, raise_server_exceptions=False)
    world = World(chain, store, settings, indexer, app, client, nodes, tmp_path, model_hash=genesis)
    if open_round:
        world.open_round()
    return world
