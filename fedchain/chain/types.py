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
    def current_round_id(self) -> int: ...
    def get_round(self, round_id: int) -> RoundInfo: ...  # raises NotFound for an unknown id
    def get_commitment(self, round_id: int, node: str) -> Commitment | None: ...
    def is_active_node(self, address: str) -> bool: ...
    def node_count(self) -> int: ...
    def latest_model_hash(self) -> str: ...
    def genesis_model_hash(self) -> str | None: ...
    def events(self, from_block: int, to_block: int | None = None) -> list[EventRecord]: ...
    def receipt(self, tx_hash: str) -> TxResult: ...
