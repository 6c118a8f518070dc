"""Property-based tests of TrainingRounds' invariants (hypothesis through brownie, 200 examples each).

brownie's ``given`` reverts the chain to the state the fixtures built before every example, so each
example starts from the same round state; time travel uses ``evm_setNextBlockTimestamp`` and is
reverted with it.
"""

import pytest
from brownie.test import given, strategy
from conftest import GRACE, ROUND_SECONDS, h, next_block_at, now, reverts_with, unauthorized, warp
from hypothesis import settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=200, deadline=None)
OPEN, FINALIZED, EXPIRED = 1, 2, 3


def snapshot_round(rounds, round_id, nodes):
    """Everything observable about a round: getRound and every node's commitment."""
    return (tuple(rounds.getRound(round_id)), tuple(tuple(rounds.getCommitment(round_id, n)) for n in nodes))


@pytest.fixture(scope="module")
def round_one(rounds, fed, nodes):
    """Round 1 is open (deadline ROUND_SECONDS ahead, quorum 1) and nodes 0 and 1 have committed."""
    rid, _, deadline = fed.open(min_updates=1)
    fed.submit(rid, nodes[0], 10)
    fed.submit(rid, nodes[1], 20)
    return rid, deadline


# --- one commitment per node per round ----------------------------------------------------
@EXAMPLES
@given(attempts=st.lists(st.tuples(st.integers(2, 4), st.integers(1, 2**64 - 1)), min_size=1, max_size=6))
def test_a_node_commits_at_most_once_per_round(rounds, round_one, nodes, attempts):
    rid, _ = round_one
    first = {0: (h(f"update/{rid}", 0), 10), 1: (h(f"update/{rid}", 1), 20)}
    for k, (i, samples) in enumerate(attempts):
        update = h("attempt", k)
        if i in first:
            with reverts_with("AlreadySubmitted", rid, nodes[i]):
                rounds.submitUpdate(rid, update, samples, {"from": nodes[i]})
        else:
            rounds.submitUpdate(rid, update, samples, {"from": nodes[i]})
            first[i] = (update, samples)
    assert rounds.getRound(rid)[8] == len(first)  # commitCount
    for i, (update, samples) in first.items():
        assert tuple(rounds.getCommitment(rid, nodes[i])) == (update, samples)


# --- no commitment after the deadline -------------------------------------------------------
@EXAMPLES
@given(offset=st.one_of(st.integers(-50, 50), st.integers(51, 10**8)), node=st.integers(2, 4))
def test_no_commitment_is_accepted_after_the_deadline(rounds, round_one, nodes, offset, node):
    rid, deadline = round_one
    next_block_at(deadline + offset)
    if offset <= 0:
        rounds.submitUpdate(rid, h("late"), 1, {"from": nodes[node]})
        assert rounds.getRound(rid)[8] == 3
    else:
        with reverts_with("DeadlinePassed", rid, deadline):
            rounds.submitUpdate(rid, h("late"), 1, {"from": nodes[node]})
        assert rounds.getRound(rid)[8] == 2
        assert rounds.getCommitment(rid, nodes[node])[1] == 0


# --- only the aggregator finalizes ----------------------------------------------------------
NONZERO_HASH = strategy("bytes32", exclude=b"\x00" * 32)


@EXAMPLES
@given(sender=strategy("address"), grant=st.booleans(), accepted=st.integers(1, 2), model=NONZERO_HASH)
def test_only_an_aggregator_finalizes(rounds, round_one, admin, aggregator, sender, grant, accepted, model):
    rid, _ = round_one
    if grant:
        rounds.grantRole(rounds.AGGREGATOR_ROLE(), sender, {"from": admin})
    before = tuple(rounds.getRound(rid))
    if sender == aggregator or grant:
        rounds.finalizeRound(rid, model, h("report"), accepted, {"from": sender})
        assert rounds.getRound(rid)[10] == FINALIZED
        assert rounds.latestModelHash() == "0x" + bytes(model).hex()
    else:
        with reverts_with(*unauthorized(sender, "AGGREGATOR_ROLE")):
            rounds.finalizeRound(rid, model, h("report"), accepted, {"from": sender})
        assert tuple(rounds.getRound(rid)) == before
        assert rounds.latestModelHash() == rounds.genesisModelHash()


# --- a finalized or expired round never changes -------------------------------------------
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(0, 4)),
        st.tuples(st.just("finalize"), st.integers(1, 3)),
        st.tuples(st.just("expire"), st.just(0)),
        st.tuples(st.just("open"), st.just(0)),
        st.tuples(st.just("sleep"), st.integers(1, 2 * (ROUND_SECONDS + GRACE))),
    ),
    max_size=4,
)


@EXAMPLES
@given(close=st.sampled_from(["finalize", "expire"]), actions=ACTIONS)
def test_a_closed_round_never_changes(rounds, round_one, nodes, aggregator, outsider, close, actions):
    rid, deadline = round_one
    if close == "finalize":
        rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    else:
        next_block_at(deadline + GRACE + 1)
        rounds.expireRound(rid, {"from": outsider})
    closed = snapshot_round(rounds, rid, nodes)
    latest = rounds.latestModelHash()
    current = rid
    for name, arg in actions:
        if name == "submit":
            with reverts_with("RoundNotOpen", rid):
                rounds.submitUpdate(rid, h("after"), 1, {"from": nodes[arg]})
        elif name == "finalize":
            with reverts_with("RoundNotOpen", rid):
                rounds.finalizeRound(rid, h("model", 2), h("report", 2), min(arg, 2), {"from": aggregator})
        elif name == "expire":
            with reverts_with("RoundNotOpen", rid):
                rounds.expireRound(rid, {"from": outsider})
        elif name == "open" and rounds.getRound(current)[10] != OPEN:
            tx = rounds.openRound(latest, h("config", current + 1), now() + ROUND_SECONDS, 1, {"from": aggregator})
            current = tx.return_value
        elif name == "sleep":
            warp(now() + arg)
        assert tuple(rounds.getRound(rid)) == closed[0]
    assert snapshot_round(rounds, rid, nodes) == closed
    assert rounds.getRound(rid)[10] == (FINALIZED if close == "finalize" else EXPIRED)


# --- round ids only increase --------------------------------------------------------------
ROUND_PLANS = st.lists(
    st.tuples(
        st.sampled_from(["finalize", "expire", "lapse"]),  # how the round ends
        st.integers(0, 2),  # nodes (besides nodes 0 and 1 in round 1) that commit
        st.integers(0, 3 * ROUND_SECONDS),  # seconds that pass before it ends
    ),
    min_size=1,
    max_size=2,
)


@EXAMPLES
@given(plans=ROUND_PLANS)
def test_round_ids_only_increase(rounds, round_one, nodes, aggregator, outsider, plans):
    """Round 1, then each following round, ends in one of the ways a round can end (finalized,
    perhaps late; expired by anyone; left to lapse until the next openRound expires it) and the
    next one is opened: openRound returns the previous id plus one, every earlier round is closed,
    opening blocks increase with the ids, and the latest model follows the finalized rounds."""
    rid, _ = round_one
    latest = rounds.latestModelHash()
    finalized = 0
    for close, committers, delay in plans:
        for node in nodes[2 : 2 + committers]:
            rounds.submitUpdate(rid, h("u", rid), 1, {"from": node})
        warp(now() + delay)
        before = rounds.getRound(rid)
        round_deadline = before[4]
        if close == "finalize":
            if before[8] == 0:
                with reverts_with("AcceptedExceedsCommitments", rid, 1, 0):
                    rounds.finalizeRound(rid, h("model", rid), h("report", rid), 1, {"from": aggregator})
                next_block_at(max(now(), round_deadline + GRACE + 1))
                rounds.expireRound(rid, {"from": outsider})
            else:
                rounds.finalizeRound(rid, h("model", rid), h("report", rid), 1, {"from": aggregator})
                latest, finalized = h("model", rid), rid
        elif close == "expire":
            next_block_at(max(now(), round_deadline + GRACE + 1))
            rounds.expireRound(rid, {"from": outsider})
        else:
            warp(max(now(), round_deadline + GRACE + 1))
        assert rounds.currentRoundId() == rid
        tx = rounds.openRound(latest, h("config", rid + 1), now() + ROUND_SECONDS, 1, {"from": aggregator})
        assert tx.return_value == rid + 1
        closed, opened = rounds.getRound(rid), rounds.getRound(rid + 1)
        assert closed[10] in (FINALIZED, EXPIRED) and opened[10] == OPEN
        assert closed[5] < opened[5]  # openedAt
        rid = tx.return_value
    assert rounds.currentRoundId() == len(plans) + 1
    assert rounds.lastFinalizedRoundId() == finalized
    assert rounds.latestModelHash() == latest
