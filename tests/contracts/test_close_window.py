"""The close window: once ``minUpdates`` nodes have committed, a round with a ``closeWindow``
brings its deadline forward to ``min(deadline, block time + closeWindow - 1)``: commitments stay
open for ``closeWindow`` seconds of block time from the quorum's block (its own second included),
so a round with enough commitments does not wait its whole deadline for nodes that dropped out,
while the rest keep the window (relays included: the window must exceed the relay cut-off).
"""

from brownie import web3
from conftest import (
    assert_event,
    decoded_events,
    event_count,
    h,
    next_block_at,
    params,
    reverts_with,
    round_dict,
    warp,
)

WINDOW = 30


def block_time(tx) -> int:
    return int(web3.eth.get_block(tx.block_number)["timestamp"])


def brought_forward(tx) -> list[dict]:
    return decoded_events(tx, "DeadlineBroughtForward")


# --- opening ----------------------------------------------------------------------------------
def test_a_close_window_not_above_the_relay_cutoff_is_refused_by_name(rounds, aggregator, genesis):
    deadline = web3.eth.get_block("latest")["timestamp"] + 1000
    for window, cutoff in ((10, 10), (5, 10)):
        with reverts_with("InvalidCloseWindow", window, cutoff):
            rounds.openRound(genesis, h("config"), params(deadline, 1, 10, 0, cutoff, 0, 0, window),
                             {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), params(deadline, 1, 10, 0, 10, 0, 0, 11), {"from": aggregator})
    assert round_dict(rounds, tx.return_value)["closeWindow"] == 11


# --- bringing the deadline forward -------------------------------------------------------------
def test_the_quorum_commitment_brings_the_deadline_forward_by_the_close_window(rounds, fed, nodes):
    rid, _, deadline = fed.open(min_updates=3, close_window=WINDOW)
    for node in nodes[:2]:
        assert brought_forward(fed.submit(rid, node)) == []
        assert rounds.getRound(rid)[6] == deadline
    tx = fed.submit(rid, nodes[2])
    closes = block_time(tx) + WINDOW - 1
    assert_event(tx, "DeadlineBroughtForward", roundId=rid, deadline=closes)
    assert round_dict(rounds, rid)["deadline"] == closes < deadline
    # Later commitments neither move it again nor emit the event.
    assert brought_forward(fed.submit(rid, nodes[3])) == []
    assert rounds.getRound(rid)[6] == closes


def test_a_commitment_after_the_brought_forward_deadline_is_refused_as_deadline_passed(rounds, fed, nodes):
    rid, _, _ = fed.open(min_updates=2, close_window=WINDOW)
    fed.submit(rid, nodes[0])
    closes = block_time(fed.submit(rid, nodes[1])) + WINDOW - 1
    next_block_at(closes)
    assert event_count(fed.submit(rid, nodes[2]), "UpdateSubmitted") == 1
    next_block_at(closes + 1)
    with reverts_with("DeadlinePassed", rid, closes):
        fed.submit(rid, nodes[3])


def test_the_aggregator_may_finalize_only_once_the_brought_forward_deadline_passed(rounds, fed, nodes, aggregator):
    rid, _, deadline = fed.open(min_updates=2, close_window=WINDOW)
    fed.submit(rid, nodes[0])
    closes = block_time(fed.submit(rid, nodes[1])) + WINDOW - 1
    with reverts_with("CommitPhaseOpen", rid, 2, len(nodes), closes):
        rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    warp(closes + 1)
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model"), reportHash=h("report"),
                 acceptedCount=2)
    assert closes + 1 < deadline


def test_a_one_second_window_takes_commitments_in_the_quorums_own_second_only(rounds, fed, nodes, aggregator):
    rid, _, deadline = fed.open(min_updates=2, close_window=1)
    fed.submit(rid, nodes[0])
    at = block_time(fed.submit(rid, nodes[1]))
    assert round_dict(rounds, rid)["deadline"] == at < deadline
    next_block_at(at)  # another block in the same second: still inside the window
    assert event_count(fed.submit(rid, nodes[2]), "UpdateSubmitted") == 1
    next_block_at(at + 1)
    with reverts_with("DeadlinePassed", rid, at):
        fed.submit(rid, nodes[3])
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 3, {"from": aggregator})
    assert_event(tx, "RoundFinalized", roundId=rid, acceptedCount=3, globalModelHash=h("model"),
                 reportHash=h("report"))


def test_a_close_window_that_ends_after_the_deadline_leaves_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open(min_updates=1, seconds=20, close_window=WINDOW)
    tx = fed.submit(rid, nodes[0])
    assert brought_forward(tx) == []
    assert rounds.getRound(rid)[6] == deadline


def test_without_a_close_window_the_quorum_does_not_move_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open(min_updates=1)
    assert brought_forward(fed.submit(rid, nodes[0])) == []
    assert rounds.getRound(rid)[6] == deadline


def test_a_relayed_batch_that_reaches_the_quorum_brings_the_deadline_forward_once(rounds, fed, nodes):
    rid, _, deadline = fed.open(min_updates=2, relay_cutoff=10, close_window=WINDOW)
    fed.submit(rid, nodes[0])
    tx = fed.batch(rid, [fed.signed(rid, n) for n in nodes[1:4]])
    assert tx.return_value == 3
    closes = block_time(tx) + WINDOW - 1
    assert [e["deadline"] for e in brought_forward(tx)] == [closes]
    assert rounds.getRound(rid)[6] == closes
    # The relay closes at the new deadline minus the cut-off, the direct path at the deadline.
    next_block_at(closes - 10 + 1)
    with reverts_with("RelayClosed", rid, closes - 10):
        fed.batch(rid, [fed.signed(rid, nodes[4])])
    next_block_at(closes)
    assert event_count(fed.submit(rid, nodes[4]), "UpdateSubmitted") == 1


def test_a_secure_round_seals_after_the_brought_forward_deadline_and_keeps_its_unmask_deadline(
        rounds, fed, nodes, aggregator):
    rid, _, deadline = fed.open(min_updates=3, threshold=3, unmask_window=100, close_window=WINDOW)
    for node in nodes[:2]:
        fed.submit(rid, node)
    closes = block_time(fed.submit(rid, nodes[2])) + WINDOW - 1
    with reverts_with("CommitPhaseOpen", rid, 3, len(nodes), closes):
        rounds.sealCommitments(rid, [], 3, {"from": aggregator})
    warp(closes + 1)
    tx = rounds.sealCommitments(rid, [], 3, {"from": aggregator})
    # The unmask phase was fixed at opening from the deadline given then: it is not shortened.
    assert_event(tx, "CommitmentsSealed", roundId=rid, survivorCount=3, excludedCount=0,
                 unmaskDeadline=deadline + 100)


def test_the_quorum_commitment_stays_within_the_direct_commit_gas_target(rounds, fed, nodes):
    """docs/gas.md: a direct commitment costs at most 45,000 gas, the one that reaches the quorum
    and brings the deadline forward (one more slot read and an event) included."""
    rid, _, _ = fed.open(min_updates=3, close_window=WINDOW)
    fed.submit(rid, nodes[0])
    plain = fed.submit(rid, nodes[1]).gas_used
    crossing = fed.submit(rid, nodes[2])
    assert brought_forward(crossing)
    assert plain < crossing.gas_used <= 45_000, (plain, crossing.gas_used)
