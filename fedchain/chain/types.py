"""Plain data types the chain client returns. Hashes are ``0x`` + 64 lowercase hex digits;
addresses are checksummed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class RoundStatus(enum.IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    EXPIRED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class SkipReason(enum.IntEnum):
    """Why ``submitBatch`` skipped a relayed commitment (``CommitmentSkipped`` events)."""

    NONE = 0
    INVALID_SIGNATURE = 1
    NOT_ELIGIBLE = 2
    ALREADY_SUBMITTED = 3
    ZERO_HASH = 4
    ZERO_SAMPLES = 5
    TOO_MANY_SAMPLES = 6


@dataclass(frozen=True)
class RoundParams:
    """What ``openRound`` takes besides the two hashes (``ITrainingRounds.RoundParams``)."""

    deadline: int  # unix seconds (chain time)
    min_updates: int
    max_samples: int
    selection_rate: int = 0  # 0: every eligible node; else selected iff H(seed, node) >> 192 < rate
    relay_cutoff: int = 0  # seconds before the deadline after which relayed batches are refused
    threshold: int = 0  # secure rounds: t of the t-of-n unmasking; 0 for a transparent round
    unmask_window: int = 0  # secure rounds: seconds after the deadline for the unmask phase
    #: 0: commitments until the deadline. Else the minUpdates-th commitment brings the deadline
    #: forward to at most this many seconds after its block (must exceed relay_cutoff).
    close_window: int = 0

    @property
    def secure(self) -> bool:
        return self.threshold != 0

    def as_tuple(self) -> tuple[int, ...]:
        return (int(self.deadline), int(self.min_updates), int(self.max_samples), int(self.selection_rate),
                int(self.relay_cutoff), int(self.threshold), int(self.unmask_window), int(self.close_window))


@dataclass(frozen=True)
class RoundInfo:
    round_id: int
    base_model_hash: str
    config_hash: str
    global_model_hash: str | None  # None until finalized
    report_hash: str | None
    deadline: int  # unix seconds
    opened_at: int  # block number
    closed_at: int  # block number, 0 while open
    min_updates: int
    commit_count: int
    accepted_count: int
    status: RoundStatus
    eligible_count: int = 0
    max_samples: int = 2**64 - 1
    selection_rate: int = 0
    relay_cutoff: int = 0
    close_window: int = 0
    accumulator: str = "0x" + "00" * 32
    seed: str = "0x" + "00" * 32
    #: The block the values were read at (None: latest at the time of the read).
    block: int | None = None

    @property
    def sampled(self) -> bool:
        return self.selection_rate != 0

    @property
    def relay_closes_at(self) -> int:
        """Chain time after which relayed batches are refused (the direct path stays open)."""
        return max(0, self.deadline - self.relay_cutoff)

    def may_close_early(self) -> bool:
        """What the contract allows before the deadline: everyone eligible has committed."""
        return not self.sampled and self.commit_count >= self.eligible_count


@dataclass(frozen=True)
class Commitment:
    round_id: int
    node: str
    update_hash: str
    num_samples: int


@dataclass(frozen=True)
class EventRecord:
    name: str  # e.g. "UpdateSubmitted"
    contract: str  # "NodeRegistry" | "TrainingRounds"
    args: dict[str, Any]  # bytes32 values as 0x-hex strings, addresses checksummed
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    events: list[EventRecord] = field(default_factory=list)


class ChainReader(Protocol):
    """The read side of :class:`fedchain.chain.client.ChainClient`, which the API, the index and
    the auditor depend on. Unit tests may pass a fake that implements it."""

    chain_id: int
    rounds_address: str
    registry_address: str
    deploy_block: int

    def block_number(self) -> int: ...
    def block_timestamp(self, block: int | None = None) -> int: ...  # chain time, seconds
    def current_round_id(self) -> int: ...
    def get_round(self, round_id: int, block: int | None = None) -> RoundInfo: ...  # NotFound if unknown
    def commitments(self, round_id: int, block: int | None = None) -> list[Commitment]: ...
    def get_commitment(self, round_id: int, node: str) -> Commitment | None: ...
    def has_committed(self, round_id: int, node: str) -> bool: ...
    def is_active_node(self, address: str) -> bool: ...
    def node_count(self) -> int: ...
    def latest_model_hash(self) -> str: ...
    def genesis_model_hash(self) -> str | None: ...
    def events(self, from_block: int, to_block: int | None = None) -> list[EventRecord]: ...
    def receipt(self, tx_hash: str) -> TxResult: ...


@dataclass(frozen=True)
class UnmaskPhase:
    """A secure round's unmask phase (``ITrainingRounds.UnmaskPhase``); all zero for a transparent round."""

    threshold: int = 0
    unmask_deadline: int = 0  # chain time (seconds): last block in which unmasking posts count
    sealed: bool = False
    sealed_at: int = 0  # block number
    survivor_count: int = 0
    unmask_count: int = 0
    accumulator: str = "0x" + "00" * 32

    @property
    def secure(self) -> bool:
        return self.threshold != 0


@dataclass(frozen=True)
class UnmaskPost:
    round_id: int
    node: str
    unmask_hash: str


@dataclass(frozen=True)
class SecureRoundView:
    """Everything public about a secure round, read at one block: the selected set S with the
    X25519 keys in effect for the round, the commitments, the nodes the seal excluded, the
    survivors C' (committers minus excluded, in protocol order) and the unmasking posts."""

    info: RoundInfo
    phase: UnmaskPhase
    selected: list[str]
    public_keys: dict[str, bytes]
    commitments: list[Commitment]
    excluded: list[str]
    posts: list[UnmaskPost]

    @property
    def survivors(self) -> list[Commitment]:
        out = {e.lower() for e in self.excluded}
        return sorted((c for c in self.commitments if c.node.lower() not in out), key=lambda c: int(c.node, 16))
