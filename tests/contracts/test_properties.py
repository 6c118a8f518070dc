"""Property-based tests of TrainingRounds' v2 invariants (hypothesis through brownie).

brownie's ``given`` reverts the chain to the state the fixtures built before every example. Each
example costs a few RPC round trips, so the example counts are modest; test/forge runs the same
invariants at volume (make test-invariants).
"""

import pytest
from brownie.test import given
from conftest import (
    GRACE,
    ROUND_SECONDS,
    addr,
    fold_all,
    h,
    hx,
    next_block_at,
    now,
    reverts_with,
    round_dict,
    sign,
    submitted,
    warp,
)
from hypothesis import settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=40, deadline=None)

# One action: ("direct", node, samples) or ("batch", [(node, samples), ...]). Nodes repeat on
# purpose: within a batch, across batches, and across the direct and the batched path.
ACTION = st.one_of(
    st.tuples(st.just("direct"), st.integers(0, 4), st.integers(1, 1000)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.integers(0, 4), st.integers(1, 1000)), max_size=4)),
)


@pytest.fixture(scope="module")
def open_round(rounds, fed):
    rid, _, deadline = fed.open()
    return rid, deadline


def run(rounds, fed, nodes, rid, actions):
    """Play ``actions``; return the UpdateSubmitted list in order and the set of nodes seen."""
    events, committed = [], set()
    for k, action in enumerate(actions):
        if action[0] == "direct":
            _, i, samples = action
            if i in committed:
                with reverts_with("AlreadySubmitted", rid, nodes[i]):
                    rounds.submitUpdate(rid, h("d", k), samples, {"from": nodes[i]})
                continue
            events += submitted(rounds.submitUpdate(rid, h("d", k), samples, {"from": nodes[i]}))
            committed.add(i)
        else:
            entries = [sign(rounds, fed.keys[i], rid, h(f"b{k}", j), samples)
                       for j, (i, samples) in enumerate(action[1])]
            tx = fed.batch(rid, entries)
            fresh = []
            for i, _ in action[1]:
                if i not in committed:
                    committed.add(i)
                    fresh.append(addr(nodes[i]))
            assert tx.return_value == len(fresh)
            got = submitted(tx)
            assert [e[0] for e in got] == fresh
            events += got
    return events, committed


@EXAMPLES
@given(actions=st.lists(ACTION, max_size=6))
def test_the_accumulator_is_the_fold_of_the_event_list(rounds, fed, nodes, open_round, actions):
    rid, _ = open_round
    events, _ = run(rounds, fed, nodes, rid, actions)
    assert round_dict(rounds, rid)["accumulator"] == hx(fold_all(rounds, rid, events))
    assert rounds.checkCommitments(rid, events)
    if len(events) >= 2:
        swapped = [events[1], events[0], *events[2:]]
        assert not rounds.checkCommitments(rid, swapped)
        altered = [(events[0][0], events[0][1], events[0][2] + 1), *events[1:]]
        assert not rounds.checkCommitments(rid, altered)


@EXAMPLES
@given(actions=st.lists(ACTION, max_size=6))
def test_no_node_is_counted_twice_across_direct_and_batched_paths(rounds, fed, nodes, open_round, actions):
    rid, _ = open_round
    events, committed = run(rounds, fed, nodes, rid, actions)
    committers = [e[0] for e in events]
    assert len(committers) == len(set(committers)) == len(committed)
    assert round_dict(rounds, rid)["commitCount"] == len(committers)
    for i, node in enumerate(nodes):
        assert rounds.hasCommitted(rid, node) == (i in committed)


@EXAMPLES
@given(committers=st.sets(st.integers(0, 4)), via_batch=st.sets(st.integers(0, 4)),
       early=st.integers(0, 900), sampled=st.booleans())
def test_no_early_close_while_an_eligible_node_has_not_committed(rounds, fed, nodes, aggregator, committers,
                                                                  via_batch, early, sampled):
    warp(now() + ROUND_SECONDS + GRACE + 1)  # the module's open round, if any, becomes expirable
    rid, _, deadline = fed.open(selection_rate=2**64 - 1 if sampled else 0)
    direct = sorted(committers - via_batch)
    for i in direct:
        fed.submit(rid, nodes[i])
    relayed = sorted(committers & via_batch)
    if relayed:
        fed.batch(rid, [fed.signed(rid, nodes[i]) for i in relayed])
    count = len(committers)
    next_block_at(deadline - early)
    accepted = max(count, 1)
    if count == 0:
        with reverts_with("AcceptedExceedsCommitments", rid, 1, 0):
            rounds.finalizeRound(rid, h("m"), h("r"), accepted, {"from": aggregator})
    elif sampled or count < len(nodes):
        with reverts_with("CommitPhaseOpen", rid, count, len(nodes), deadline):
            rounds.finalizeRound(rid, h("m"), h("r"), accepted, {"from": aggregator})
        assert round_dict(rounds, rid)["status"] == 1
    else:
        rounds.finalizeRound(rid, h("m"), h("r"), accepted, {"from": aggregator})
        assert round_dict(rounds, rid)["status"] == 2
