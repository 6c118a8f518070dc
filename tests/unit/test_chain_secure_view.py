"""ChainClient's reading of a secure round's public sets from events: the selected set S and the
keys in effect when the round opened (key rotations count from the next round), and the
unmask-post list checked against its accumulator."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from fedchain.chain import accumulator
from fedchain.chain.client import ChainClient
from fedchain.chain.types import EventRecord, RoundInfo, RoundStatus
from fedchain.errors import ChainError

A, B, C = ("0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20)
A, B, C = (a[:2] + a[2:].upper() for a in (A, B, C))  # any fixed spelling; the client keeps the events'
KA1, KA2, KB, KC = (bytes([i]) * 32 for i in (1, 2, 3, 4))


def ev(name: str, block: int, log: int, **args) -> EventRecord:
    return EventRecord(name=name, contract="TrainingRounds", args=args, block_number=block, tx_hash="0x", log_index=log)


EVENTS = [
    ev("NodeAdmitted", 1, 0, node=A, publicKey="0x" + KA1.hex()),
    ev("NodeAdmitted", 1, 1, node=C, publicKey="0x" + KC.hex()),
    ev("NodeRemoved", 2, 0, node=C),
    ev("RoundOpened", 3, 0, roundId=1),
    ev("NodeAdmitted", 3, 1, node=B, publicKey="0x" + KB.hex()),  # same block, after the opening
    ev("NodeUpdated", 4, 0, node=A, publicKey="0x" + KA2.hex()),  # a rotation during round 1
    ev("RoundOpened", 5, 0, roundId=2),
]


class Client(ChainClient):
    def __init__(self, events):  # no web3: only what selected_set reads
        self._events, self.deploy_block = events, 0

    def events_named(self, from_block, to_block, names):  # type: ignore[override]
        return self.events(from_block, to_block, names=names)

    def events(self, from_block, to_block=None, *, names=None, topics=None):  # type: ignore[override]
        return [e for e in self._events if from_block <= e.block_number <= (to_block or 10**9)
                and (names is None or e.name in names)]


def info(rid: int, opened_at: int, eligible: int, rate: int = 0, seed: str = "0x" + "00" * 32) -> RoundInfo:
    return RoundInfo(round_id=rid, base_model_hash="0x", config_hash="0x", global_model_hash=None, report_hash=None,
                     deadline=0, opened_at=opened_at, closed_at=0, min_updates=1, commit_count=0, accepted_count=0,
                     status=RoundStatus.OPEN, eligible_count=eligible, selection_rate=rate, seed=seed)


def test_selected_set_is_the_nodes_eligible_at_opening_with_the_keys_in_effect_then():
    c = Client(EVENTS)
    s1, k1 = c.selected_set(info(1, 3, eligible=1))
    assert s1 == [A] and k1 == {A: KA1}  # C was removed, B joined after the opening
    s2, k2 = c.selected_set(info(2, 5, eligible=2))
    assert s2 == sorted([A, B], key=lambda a: int(a, 16)) and k2[A] == KA2 and k2[B] == KB  # rotation now in effect


def test_a_selected_set_that_disagrees_with_the_contracts_count_is_refused():
    with pytest.raises(ChainError, match="eligible"):
        Client(EVENTS).selected_set(info(2, 5, eligible=3))
    with pytest.raises(ChainError, match="RoundOpened"):
        Client(EVENTS[:3]).selected_set(info(1, 3, eligible=1))


def test_the_replay_reads_only_its_own_rounds_opening_not_every_earlier_rounds():
    reads = []

    class Counting(Client):
        def events_named(self, from_block, to_block, names):  # type: ignore[override]
            reads.append((from_block, to_block, frozenset(names)))
            return super().events_named(from_block, to_block, names)

    Counting(EVENTS).selected_set(info(2, 5, eligible=2))
    openings = [(lo, hi) for lo, hi, names in reads if "RoundOpened" in names]
    assert openings == [(5, 5)]  # its block only: the replay does not grow with the round count
    assert all(names <= {"NodeAdmitted", "NodeRemoved", "NodeUpdated"} for lo, hi, names in reads if (lo, hi) != (5, 5))


def test_a_sampled_round_keeps_exactly_the_nodes_the_contracts_rule_selects():
    seed = "0x" + "5e" * 32
    rate = 2**63
    c = Client(EVENTS)
    s, _ = c.selected_set(info(2, 5, eligible=2, rate=rate, seed=seed))

    def picked(node: str) -> bool:  # keccak256(abi.encode(seed, node)) >> 192 < rate
        return int.from_bytes(keccak(bytes.fromhex(seed[2:]) + bytes(12) + bytes.fromhex(node[2:])), "big") >> 192 < rate

    assert s == [a for a in sorted([A, B], key=lambda a: int(a, 16)) if picked(a)]


def test_unmask_accumulator_fold_matches_its_definition():
    posts = [(A, "0x" + "11" * 32), (B, "0x" + "22" * 32)]
    start = accumulator.initial_unmask(31337, A, 7)
    assert start != accumulator.initial(31337, A, 7)  # domain-separated from the commit accumulator
    from eth_abi import encode

    acc = start
    for node, h in posts:
        acc = "0x" + keccak(encode(["bytes32", "address", "bytes32"], [bytes.fromhex(acc[2:]), node, bytes.fromhex(h[2:])])).hex()
    assert accumulator.fold_unmasks(31337, A, 7, posts) == acc
