"""Signed commitments waiting to be relayed on-chain in one ``submitBatch`` (gasless nodes).

A node in relay mode posts its EIP-712 ``Commitment`` signature to the API
(``POST /rounds/{id}/commitments``); the API checks it and calls :meth:`RelayQueue.add`. The round
loop drains the queue with :meth:`RelayQueue.take` and relays the batch. The contract re-checks
every entry and skips, rather than reverts on, the ones it cannot take, so nothing here is
trusted: the queue only saves nodes their gas. A node whose commitment does not appear on-chain
by the relay cut-off commits directly (the direct path stays open until the deadline), so an
aggregator that drops entries from the queue cannot shut a node out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SignedCommitment:
    round_id: int
    node: str  # checksummed signer, recovered by the API
    update_hash: str
    num_samples: int
    signature: str  # EIP-2098 compact, 0x + 128 hex


@dataclass(frozen=True)
class SignedUnmask:
    """A survivor's signed unmasking post (secure rounds), for ``submitUnmaskBatch``."""

    round_id: int
    node: str
    unmask_hash: str
    signature: str  # EIP-2098 compact


class RelayQueue:
    """Thread-safe: the API adds, the round loop takes. One entry per (round, node); a node that
    posts again replaces its entry (the contract keeps only its first on-chain commitment)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str], SignedCommitment] = {}
        self._unmasks: dict[tuple[int, str], SignedUnmask] = {}
        #: when the oldest queued unmasking post of each round arrived (monotonic seconds)
        self._unmasks_since: dict[int, float] = {}
        self.max_entries = max_entries
        #: Set by :meth:`add`; the round loop waits on it instead of polling.
        self.arrived = threading.Event()

    def add(self, entry: SignedCommitment) -> bool:
        """Queue ``entry``; False if the queue is full."""
        with self._lock:
            key = (entry.round_id, entry.node)
            if key not in self._pending and len(self._pending) >= self.max_entries:
                return False
            self._pending[key] = entry
        self.arrived.set()
        return True

    def poke(self) -> None:
        """Something for the round loop arrived without a queue entry (an upload, whose direct
        commitment follows): wake it to look at the chain again."""
        self.arrived.set()

    def take(self, round_id: int) -> list[SignedCommitment]:
        """Remove and return every queued entry of ``round_id``, ordered by node address; entries
        of other rounds are dropped (they can never be relayed)."""
        with self._lock:
            mine = sorted((e for (r, _), e in self._pending.items() if r == round_id), key=lambda e: e.node.lower())
            self._pending.clear()
            if not self._unmasks:
                self.arrived.clear()
        return mine

    def add_unmask(self, entry: SignedUnmask) -> bool:
        """Queue a signed unmasking post; False if the queue is full."""
        with self._lock:
            key = (entry.round_id, entry.node)
            if key not in self._unmasks and len(self._unmasks) >= self.max_entries:
                return False
            self._unmasks[key] = entry
            self._unmasks_since.setdefault(entry.round_id, time.monotonic())
        self.arrived.set()
        return True

    def unmask_backlog(self, round_id: int) -> tuple[int, float]:
        """(how many unmasking posts of ``round_id`` are queued, seconds the oldest has waited)."""
        with self._lock:
            n = sum(1 for (r, _) in self._unmasks if r == round_id)
            since = self._unmasks_since.get(round_id)
        return n, (time.monotonic() - since) if n and since is not None else 0.0

    def take_unmasks(self, round_id: int) -> list[SignedUnmask]:
        """Remove and return the queued unmasking posts of ``round_id`` (others are dropped)."""
        with self._lock:
            mine = sorted((e for (r, _), e in self._unmasks.items() if r == round_id), key=lambda e: e.node.lower())
            self._unmasks.clear()
            self._unmasks_since.clear()
            if not self._pending:
                self.arrived.clear()
        return mine

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._unmasks)
