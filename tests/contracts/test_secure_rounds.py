"""Secure rounds (threshold != 0): opening, sealing the commit phase (sealCommitments), unmasking
posts (submitUnmask, relayed submitUnmaskBatch), finalization and expiry of a secure round, and
that transparent rounds are unaffected.

A secure round runs like a transparent one until its commit phase closes (every eligible node
committed, or the deadline passed). Then the aggregator seals it once, excluding committers whose
masked blob it lacks; the other committers are the survivors, and each posts the hash of its
unmasking blob until ``unmaskDeadline = deadline + unmaskWindow``. With ``threshold`` posts the
round may be finalized; otherwise it expires after ``unmaskDeadline + gracePeriod``.
"""

from brownie import web3
from conftest import (
    EXPIRED,
    FINALIZED,
    GRACE,
    OPEN,
    ZERO,
    ZERO_ADDRESS,
    addr,
    assert_event,
    b32,
    compact,
    decoded_events,
    event_count,
    h,
    hx,
    next_block_at,
    node_key,
    now,
    params,
    reverts_with,
    round_dict,
    sign_unmask,
    submitted,
    unauthorized,
    warp,
)
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

UINT40_MAX = 2**40 - 1
WINDOW = 500  # unmaskWindow of the rounds opened here
# SkipReason
INVALID_SIGNATURE, NOT_ELIGIBLE, ALREADY_SUBMITTED, ZERO_HASH = 1, 2, 3, 4
PHASE_FIELDS = ("threshold", "unmaskDeadline", "isSealed", "sealedAt", "survivorCount", "unmaskCount",
                "unmaskAccumulator")


# --- the protocol, recomputed in Python ------------------------------------------------------
def initial_unmask_accumulator(contract, round_id: int) -> bytes:
    """keccak256(abi.encode(block.chainid, address(this), roundId, keccak256("fedchain/unmask")))"""
    return keccak(abi_encode(["uint256", "address", "uint256", "bytes32"],
                             [web3.eth.chain_id, addr(contract), round_id, keccak(text="fedchain/unmask")]))


def fold_unmask(acc, node, unmask_hash) -> bytes:
    """keccak256(abi.encode(acc, node, unmaskHash))"""
    return keccak(abi_encode(["bytes32", "address", "bytes32"], [b32(acc), addr(node), b32(unmask_hash)]))


def fold_unmasks(contract, round_id: int, posts) -> bytes:
    acc = initial_unmask_accumulator(contract, round_id)
    for node, unmask_hash in posts:
        acc = fold_unmask(acc, node, unmask_hash)
    return acc


def typed_unmask(contract, round_id: int, unmask_hash) -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
            ],
            "Unmask": [{"name": "roundId", "type": "uint256"}, {"name": "unmaskHash", "type": "bytes32"}],
        },
        "primaryType": "Unmask",
        "domain": {"name": "fedchain", "version": "2", "chainId": web3.eth.chain_id,
                   "verifyingContract": addr(contract)},
        "message": {"roundId": round_id, "unmaskHash": b32(unmask_hash)},
    }


def recover(digest, entry) -> str:
    r, vs = int.from_bytes(b32(entry[1]), "big"), int.from_bytes(b32(entry[2]), "big")
    return Account._recover_hash(b32(digest), vrs=(27 + (vs >> 255), r, vs & ((1 << 255) - 1)))


def unmasked(tx) -> list[tuple[str, str]]:
    """The (node, unmaskHash) list of a transaction's UnmaskSubmitted events, in order."""
    return [(e["node"], e["unmaskHash"]) for e in decoded_events(tx, "UnmaskSubmitted")]


def skipped(tx) -> list[tuple[str, int]]:
    return [(e["node"], e["reason"]) for e in decoded_events(tx, "UnmaskSkipped")]


def phase(contract, round_id: int) -> dict:
    values = contract.getUnmaskPhase(round_id)
    assert len(values) == len(PHASE_FIELDS)
    return {k: (hx(v) if k == "unmaskAccumulator" else (bool(v) if k == "isSealed" else int(v)))
            for k, v in zip(PHASE_FIELDS, values)}


def ascending(accounts) -> list[str]:
    return sorted((addr(a) for a in accounts), key=lambda a: int(a, 16))


# --- drivers ---------------------------------------------------------------------------------
def open_secure(fed, threshold: int = 3, window: int = WINDOW, **kw):
    """Open a secure round. Returns (roundId, tx, deadline, unmaskDeadline)."""
    rid, tx, deadline = fed.open(threshold=threshold, unmask_window=window, **kw)
    return rid, tx, deadline, deadline + window


def commit_all(fed, rid, nodes):
    for node in nodes:
        fed.submit(rid, node)


def commits(rounds, rid) -> int:
    """The round's commit count: what the aggregator checked and names when it seals."""
    return round_dict(rounds, rid)["commitCount"]


def seal(rounds, aggregator, rid, excluded=(), commit_count=None):
    count = commits(rounds, rid) if commit_count is None else commit_count
    return rounds.sealCommitments(rid, ascending(excluded), count, {"from": aggregator})


def unmask_hash(rid: int, i: int) -> str:
    return h(f"unmask/{rid}", i)


def post(rounds, rid, nodes, i):
    return rounds.submitUnmask(rid, unmask_hash(rid, i), {"from": nodes[i]})


def sealed_round(fed, rounds, aggregator, nodes, *, excluded=(), threshold=3, **kw):
    """A secure round in which every node committed (so it may be sealed at once), sealed with
    ``excluded``. Returns (roundId, deadline, unmaskDeadline)."""
    rid, _, deadline, unmask_deadline = open_secure(fed, threshold, **kw)
    commit_all(fed, rid, nodes)
    seal(rounds, aggregator, rid, excluded)
    return rid, deadline, unmask_deadline


# --- opening ---------------------------------------------------------------------------------
def test_a_secure_round_records_its_threshold_and_unmask_deadline_at_opening(rounds, aggregator, genesis):
    deadline = now() + 1000
    p = params(deadline, 2, 5000, 0, 60, 3, WINDOW)
    tx = rounds.openRound(genesis, h("config"), p, {"from": aggregator})
    rid = tx.return_value
    assert_event(tx, "RoundOpened", roundId=rid, baseModelHash=genesis, configHash=h("config"), params=p,
                 eligibleCount=5, seed=ZERO)
    assert phase(rounds, rid) == dict(threshold=3, unmaskDeadline=deadline + WINDOW, isSealed=False, sealedAt=0,
                                      survivorCount=0, unmaskCount=0, unmaskAccumulator=ZERO)
    r = round_dict(rounds, rid)
    assert (r["deadline"], r["minUpdates"], r["relayCutoff"], r["status"]) == (deadline, 2, 60, OPEN)


def test_a_transparent_round_has_an_all_zero_unmask_phase(rounds, fed, nodes):
    rid, _, _ = fed.open()
    commit_all(fed, rid, nodes)
    assert phase(rounds, rid) == dict(threshold=0, unmaskDeadline=0, isSealed=False, sealedAt=0, survivorCount=0,
                                      unmaskCount=0, unmaskAccumulator=ZERO)
    assert not any(rounds.isSurvivor(rid, n) for n in nodes)
    with reverts_with("UnknownRound", rid + 1):
        rounds.getUnmaskPhase(rid + 1)
    with reverts_with("UnknownRound", 0):
        rounds.getUnmaskPhase(0)


def test_a_transparent_round_refuses_an_unmask_window(rounds, aggregator, genesis):
    with reverts_with("InvalidUnmaskWindow", 5):
        rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 0, 0, 0, 5), {"from": aggregator})


def test_a_secure_round_needs_an_unmask_window_that_ends_within_40_bits(rounds, aggregator, genesis):
    with reverts_with("InvalidUnmaskWindow", 0):
        rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 0, 0, 2, 0), {"from": aggregator})
    with reverts_with("InvalidUnmaskWindow", 2):
        rounds.openRound(genesis, h("config"), params(UINT40_MAX - 1, 1, 10, 0, 0, 2, 2), {"from": aggregator})
    with reverts_with("InvalidUnmaskWindow", 2**32 - 1):
        rounds.openRound(genesis, h("config"), params(UINT40_MAX, 1, 10, 0, 0, 2, 2**32 - 1), {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), params(UINT40_MAX - 1, 1, 10, 0, 0, 2, 1), {"from": aggregator})
    assert phase(rounds, tx.return_value)["unmaskDeadline"] == UINT40_MAX


def test_an_unsampled_secure_round_refuses_a_threshold_above_the_eligible_count(rounds, aggregator, genesis):
    with reverts_with("InvalidThreshold", 6, 5):
        rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 0, 0, 6, WINDOW), {"from": aggregator})
    with reverts_with("InvalidThreshold", 2**32 - 1, 5):
        rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 0, 0, 2**32 - 1, WINDOW),
                         {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 0, 0, 5, WINDOW), {"from": aggregator})
    assert phase(rounds, tx.return_value)["threshold"] == 5


def test_a_sampled_secure_round_may_ask_for_a_threshold_above_the_eligible_count(rounds, aggregator, genesis):
    tx = rounds.openRound(genesis, h("config"), params(now() + 1000, 1, 10, 2**63, 0, 6, WINDOW), {"from": aggregator})
    assert phase(rounds, tx.return_value)["threshold"] == 6


# --- sealCommitments -------------------------------------------------------------------------
def test_sealing_early_is_allowed_once_every_eligible_node_committed(rounds, fed, aggregator, nodes):
    rid, _, deadline, unmask_deadline = open_secure(fed, 3)
    commit_all(fed, rid, nodes)
    tx = seal(rounds, aggregator, rid)
    assert web3.eth.get_block(tx.block_number)["timestamp"] < deadline
    assert_event(tx, "CommitmentsSealed", roundId=rid, survivorCount=5, excludedCount=0,
                 unmaskDeadline=unmask_deadline)
    assert event_count(tx, "CommitmentExcluded") == 0
    assert phase(rounds, rid) == dict(threshold=3, unmaskDeadline=unmask_deadline, isSealed=True,
                                      sealedAt=tx.block_number, survivorCount=5, unmaskCount=0,
                                      unmaskAccumulator=hx(initial_unmask_accumulator(rounds, rid)))
    assert all(rounds.isSurvivor(rid, n) for n in nodes)
    assert round_dict(rounds, rid)["status"] == OPEN


def test_seal_reverts_while_the_commit_phase_is_open(rounds, fed, aggregator, nodes):
    rid, _, deadline, _ = open_secure(fed, 3)
    commit_all(fed, rid, nodes[:4])
    with reverts_with("CommitPhaseOpen", rid, 4, 5, deadline):
        seal(rounds, aggregator, rid)
    next_block_at(deadline)  # the deadline itself still belongs to the commit phase
    with reverts_with("CommitPhaseOpen", rid, 4, 5, deadline):
        seal(rounds, aggregator, rid)
    next_block_at(deadline + 1)
    assert_event(seal(rounds, aggregator, rid), "CommitmentsSealed", roundId=rid, survivorCount=4, excludedCount=0,
                 unmaskDeadline=deadline + WINDOW)
    assert not rounds.isSurvivor(rid, nodes[4])


def test_a_seal_naming_a_list_that_a_later_commitment_changed_is_refused(rounds, fed, aggregator, nodes):
    rid, _, deadline, unmask_deadline = open_secure(fed, 3)
    commit_all(fed, rid, nodes[:3])
    checked = commits(rounds, rid)  # the aggregator reads the list (3) and checks those blobs ...
    fed.submit(rid, nodes[3])  # ... while a fourth commitment lands before the deadline
    next_block_at(deadline + 1)
    with reverts_with("CommitmentsChanged", rid, checked, 4):
        seal(rounds, aggregator, rid, commit_count=checked)
    with reverts_with("CommitmentsChanged", rid, 5, 4):  # a count above the list's is refused too
        seal(rounds, aggregator, rid, commit_count=5)
    assert not phase(rounds, rid)["isSealed"]
    assert_event(seal(rounds, aggregator, rid, commit_count=4), "CommitmentsSealed", roundId=rid, survivorCount=4,
                 excludedCount=0, unmaskDeadline=unmask_deadline)
    assert rounds.isSurvivor(rid, nodes[3])


def test_a_sampled_secure_round_is_never_sealed_before_its_deadline(rounds, fed, aggregator, nodes):
    rid, _, deadline, _ = open_secure(fed, 2, selection_rate=2**64 - 1)  # in practice everyone is selected
    commit_all(fed, rid, nodes)
    with reverts_with("CommitPhaseOpen", rid, 5, 5, deadline):
        seal(rounds, aggregator, rid)
    next_block_at(deadline + 1)
    assert event_count(seal(rounds, aggregator, rid), "CommitmentsSealed") == 1


def test_seal_reverts_for_a_transparent_round(rounds, fed, aggregator, nodes):
    rid, _, _ = fed.open()
    commit_all(fed, rid, nodes)
    with reverts_with("NotSecureRound", rid):
        seal(rounds, aggregator, rid)


def test_seal_reverts_for_unknown_and_closed_rounds(rounds, fed, aggregator, nodes, outsider):
    with reverts_with("UnknownRound", 1):
        seal(rounds, aggregator, 1)
    rid, _, _, unmask_deadline = open_secure(fed, 2)
    warp(unmask_deadline + GRACE + 1)
    rounds.expireRound(rid, {"from": outsider})
    with reverts_with("RoundNotOpen", rid):
        seal(rounds, aggregator, rid)


def test_seal_reverts_for_an_account_without_aggregator_role(rounds, fed, admin, outsider, nodes):
    rid, _, _, _ = open_secure(fed, 2)
    commit_all(fed, rid, nodes)
    for account in (admin, outsider, nodes[0]):
        with reverts_with(*unauthorized(account, "AGGREGATOR_ROLE")):
            rounds.sealCommitments(rid, [], commits(rounds, rid), {"from": account})


def test_a_round_is_sealed_only_once(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    with reverts_with("AlreadySealed", rid):
        seal(rounds, aggregator, rid)
    with reverts_with("AlreadySealed", rid):
        seal(rounds, aggregator, rid, [nodes[0]])
    assert phase(rounds, rid)["survivorCount"] == 5


def test_seal_is_allowed_at_the_unmask_deadline(rounds, fed, aggregator, nodes):
    rid, _, _, unmask_deadline = open_secure(fed, 2)
    commit_all(fed, rid, nodes[:3])
    next_block_at(unmask_deadline)
    tx = seal(rounds, aggregator, rid)
    assert web3.eth.get_block(tx.block_number)["timestamp"] == unmask_deadline
    assert phase(rounds, rid)["isSealed"]


def test_seal_reverts_after_the_unmask_deadline(rounds, fed, aggregator, nodes):
    rid, _, _, unmask_deadline = open_secure(fed, 2)
    commit_all(fed, rid, nodes[:3])
    next_block_at(unmask_deadline + 1)
    with reverts_with("UnmaskPhaseOver", rid, unmask_deadline):
        seal(rounds, aggregator, rid)
    assert not phase(rounds, rid)["isSealed"]


def test_seal_marks_the_excluded_committers_and_only_them(rounds, fed, aggregator, nodes):
    rid, _, _, unmask_deadline = open_secure(fed, 2)
    commit_all(fed, rid, nodes)
    excluded = ascending([nodes[3], nodes[1]])
    tx = rounds.sealCommitments(rid, excluded, commits(rounds, rid), {"from": aggregator})
    for i, node in enumerate(excluded):
        assert_event(tx, "CommitmentExcluded", i, roundId=rid, node=node)
    assert_event(tx, "CommitmentsSealed", roundId=rid, survivorCount=3, excludedCount=2,
                 unmaskDeadline=unmask_deadline)
    # The excluded events come before the seal's.
    assert [e["_event"] for e in decoded_events(tx)] == ["CommitmentExcluded"] * 2 + ["CommitmentsSealed"]
    for i, node in enumerate(nodes):
        assert rounds.isSurvivor(rid, node) == (i not in (1, 3)), i
        assert rounds.hasCommitted(rid, node)
    assert phase(rounds, rid)["survivorCount"] == 3
    assert round_dict(rounds, rid)["commitCount"] == 5


def test_seal_reverts_on_unsorted_or_repeated_exclusions(rounds, fed, aggregator, nodes):
    rid, _, _, _ = open_secure(fed, 1)
    commit_all(fed, rid, nodes)
    a, b, c = ascending(nodes[:3])
    with reverts_with("ExclusionsNotSorted", 1):
        rounds.sealCommitments(rid, [b, a], commits(rounds, rid), {"from": aggregator})
    with reverts_with("ExclusionsNotSorted", 2):
        rounds.sealCommitments(rid, [a, c, b], commits(rounds, rid), {"from": aggregator})
    with reverts_with("ExclusionsNotSorted", 1):
        rounds.sealCommitments(rid, [a, a], commits(rounds, rid), {"from": aggregator})
    with reverts_with("ExclusionsNotSorted", 2):
        rounds.sealCommitments(rid, [a, b, b], commits(rounds, rid), {"from": aggregator})
    assert not phase(rounds, rid)["isSealed"]
    assert event_count(rounds.sealCommitments(rid, [a, b, c], commits(rounds, rid), {"from": aggregator}), "CommitmentExcluded") == 3


def test_seal_reverts_on_excluding_a_node_that_did_not_commit(rounds, fed, aggregator, nodes, outsider):
    r1 = fed.full_round()  # every node committed in round 1
    rid, _, deadline, _ = open_secure(fed, 1)
    commit_all(fed, rid, nodes[:3])
    next_block_at(deadline + 1)
    for stranger in (nodes[3], outsider, ZERO_ADDRESS):
        with reverts_with("NotCommitted", rid, stranger):
            rounds.sealCommitments(rid, ascending([nodes[0], stranger]), commits(rounds, rid), {"from": aggregator})
    # nodes[4] committed in round 1, not in this one
    assert rounds.lastCommittedRound(nodes[4]) == r1 and not rounds.hasCommitted(rid, nodes[4])
    with reverts_with("NotCommitted", rid, nodes[4]):
        rounds.sealCommitments(rid, [addr(nodes[4])], commits(rounds, rid), {"from": aggregator})


def test_seal_reverts_when_fewer_survivors_than_threshold_or_quorum_would_remain(rounds, fed, aggregator, nodes):
    rid, _, _, _ = open_secure(fed, 3, min_updates=2)
    commit_all(fed, rid, nodes)
    with reverts_with("TooFewSurvivors", rid, 2, 3):
        seal(rounds, aggregator, rid, nodes[:3])
    with reverts_with("TooFewSurvivors", rid, 0, 3):
        seal(rounds, aggregator, rid, nodes)
    assert_event(seal(rounds, aggregator, rid, nodes[:2]), "CommitmentsSealed", roundId=rid, survivorCount=3,
                 excludedCount=2, unmaskDeadline=round_dict(rounds, rid)["deadline"] + WINDOW)


def test_the_quorum_bounds_the_survivors_when_it_is_above_the_threshold(rounds, fed, aggregator, nodes):
    rid, _, _, _ = open_secure(fed, 2, min_updates=4)
    commit_all(fed, rid, nodes)
    with reverts_with("TooFewSurvivors", rid, 3, 4):
        seal(rounds, aggregator, rid, nodes[:2])
    assert event_count(seal(rounds, aggregator, rid, nodes[:1]), "CommitmentsSealed") == 1


# --- submitUnmask ----------------------------------------------------------------------------
def test_a_survivor_posts_its_unmasking_hash(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, excluded=[nodes[4]])
    tx = post(rounds, rid, nodes, 2)
    assert_event(tx, "UnmaskSubmitted", roundId=rid, node=nodes[2], unmaskHash=unmask_hash(rid, 2))
    assert rounds.hasUnmasked(rid, nodes[2]) and not rounds.hasUnmasked(rid, nodes[0])
    p = phase(rounds, rid)
    assert p["unmaskCount"] == 1
    assert p["unmaskAccumulator"] == hx(fold_unmask(initial_unmask_accumulator(rounds, rid), nodes[2],
                                                    unmask_hash(rid, 2)))
    # Posting changes nothing of the commit phase.
    assert round_dict(rounds, rid)["commitCount"] == 5 and rounds.isSurvivor(rid, nodes[2])


def test_excluded_committer_cannot_post_an_unmasking(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, excluded=[nodes[1]])
    with reverts_with("NotSurvivor", rid, nodes[1]):
        post(rounds, rid, nodes, 1)
    assert not rounds.hasUnmasked(rid, nodes[1])
    assert phase(rounds, rid)["unmaskCount"] == 0


def test_a_node_that_did_not_commit_cannot_post_an_unmasking(rounds, fed, aggregator, nodes, outsider):
    rid, _, deadline, _ = open_secure(fed, 2)
    commit_all(fed, rid, nodes[:3])
    next_block_at(deadline + 1)
    seal(rounds, aggregator, rid)
    for account in (nodes[3], outsider):
        with reverts_with("NotSurvivor", rid, account):
            rounds.submitUnmask(rid, h("unmask"), {"from": account})


def test_a_survivor_cannot_post_twice(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    post(rounds, rid, nodes, 0)
    acc = phase(rounds, rid)["unmaskAccumulator"]
    with reverts_with("AlreadyUnmasked", rid, nodes[0]):
        rounds.submitUnmask(rid, h("another"), {"from": nodes[0]})
    assert phase(rounds, rid)["unmaskCount"] == 1 and phase(rounds, rid)["unmaskAccumulator"] == acc


def test_a_survivor_removed_from_the_registry_may_still_post(rounds, fed, admin, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    rounds.removeNode(nodes[0], {"from": admin})
    assert rounds.isSurvivor(rid, nodes[0])
    assert event_count(post(rounds, rid, nodes, 0), "UnmaskSubmitted") == 1


def test_submit_unmask_reverts_before_the_seal(rounds, fed, nodes):
    rid, _, _, _ = open_secure(fed, 2)
    commit_all(fed, rid, nodes)
    assert not rounds.isSurvivor(rid, nodes[0])
    with reverts_with("NotSealed", rid):
        post(rounds, rid, nodes, 0)


def test_submit_unmask_reverts_in_a_transparent_round(rounds, fed, nodes):
    rid, _, _ = fed.open()
    commit_all(fed, rid, nodes)
    with reverts_with("NotSecureRound", rid):
        post(rounds, rid, nodes, 0)


def test_submit_unmask_reverts_on_a_zero_hash(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    with reverts_with("ZeroHash"):
        rounds.submitUnmask(rid, ZERO, {"from": nodes[0]})


def test_submit_unmask_is_accepted_until_the_unmask_deadline(rounds, fed, aggregator, nodes):
    rid, _, unmask_deadline = sealed_round(fed, rounds, aggregator, nodes)
    next_block_at(unmask_deadline)
    tx = post(rounds, rid, nodes, 0)
    assert web3.eth.get_block(tx.block_number)["timestamp"] == unmask_deadline
    next_block_at(unmask_deadline + 1)
    with reverts_with("UnmaskPhaseOver", rid, unmask_deadline):
        post(rounds, rid, nodes, 1)


def test_submit_unmask_reverts_for_unknown_and_closed_rounds(rounds, fed, aggregator, nodes):
    with reverts_with("UnknownRound", 1):
        rounds.submitUnmask(1, h("u"), {"from": nodes[0]})
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, threshold=2)
    post(rounds, rid, nodes, 0)
    post(rounds, rid, nodes, 1)
    fed.finalize(rid, 2)
    with reverts_with("RoundNotOpen", rid):
        post(rounds, rid, nodes, 2)


# --- submitUnmaskBatch -----------------------------------------------------------------------
def test_a_relayed_batch_posts_every_survivors_unmasking_like_direct_posts(rounds, fed, aggregator, nodes, keys,
                                                                          outsider):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    entries = [sign_unmask(rounds, keys[i], rid, unmask_hash(rid, i)) for i in range(5)]
    tx = rounds.submitUnmaskBatch(rid, entries, {"from": outsider})  # anyone may relay
    assert tx.return_value == 5
    for i, node in enumerate(nodes):
        assert_event(tx, "UnmaskSubmitted", i, roundId=rid, node=node, unmaskHash=unmask_hash(rid, i))
        assert rounds.hasUnmasked(rid, node)
    assert event_count(tx, "UnmaskSkipped") == 0
    p = phase(rounds, rid)
    assert p["unmaskCount"] == 5
    assert p["unmaskAccumulator"] == hx(fold_unmasks(rounds, rid, unmasked(tx)))


def test_bad_relayed_unmaskings_are_skipped_not_reverted(rounds, fed, aggregator, nodes, keys):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, excluded=[nodes[4]], threshold=2)
    post(rounds, rid, nodes, 3)  # already posted directly
    stranger_key = node_key(4321)
    good0 = sign_unmask(rounds, keys[0], rid, unmask_hash(rid, 0))
    zero_r = (good0[0], ZERO, good0[2])
    twin = sign_unmask(rounds, keys[1], rid, unmask_hash(rid, 1), high_s=True)
    twin_signer = recover(rounds.unmaskDigest(rid, unmask_hash(rid, 1)), twin)
    assert twin_signer != addr(nodes[1])
    entries = [
        zero_r,                                                      # unrecoverable
        twin,                                                        # the malleable twin: a stranger
        sign_unmask(rounds, stranger_key, rid, h("x")),              # not a node
        sign_unmask(rounds, keys[4], rid, unmask_hash(rid, 4)),      # excluded at the seal
        sign_unmask(rounds, keys[3], rid, unmask_hash(rid, 3)),      # posted directly before
        sign_unmask(rounds, keys[2], rid, ZERO),                     # zero hash
        good0,
        sign_unmask(rounds, keys[0], rid, h("second")),              # a second post in the same batch
        sign_unmask(rounds, keys[2], rid, unmask_hash(rid, 2)),
    ]
    tx = rounds.submitUnmaskBatch(rid, entries, {"from": aggregator})
    assert tx.return_value == 2
    assert skipped(tx) == [
        (ZERO_ADDRESS, INVALID_SIGNATURE), (twin_signer, NOT_ELIGIBLE),
        (Account.from_key(stranger_key).address, NOT_ELIGIBLE), (addr(nodes[4]), NOT_ELIGIBLE),
        (addr(nodes[3]), ALREADY_SUBMITTED), (addr(nodes[2]), ZERO_HASH), (addr(nodes[0]), ALREADY_SUBMITTED),
    ]
    assert_event(tx, "UnmaskSkipped", 0, roundId=rid, node=ZERO_ADDRESS, reason=INVALID_SIGNATURE)
    assert_event(tx, "UnmaskSkipped", 3, roundId=rid, node=nodes[4], reason=NOT_ELIGIBLE)
    assert_event(tx, "UnmaskSkipped", 4, roundId=rid, node=nodes[3], reason=ALREADY_SUBMITTED)
    assert_event(tx, "UnmaskSkipped", 5, roundId=rid, node=nodes[2], reason=ZERO_HASH)
    assert unmasked(tx) == [(addr(nodes[0]), unmask_hash(rid, 0)), (addr(nodes[2]), unmask_hash(rid, 2))]
    p = phase(rounds, rid)
    assert p["unmaskCount"] == 3
    assert p["unmaskAccumulator"] == hx(fold_unmasks(rounds, rid, [(addr(nodes[3]), unmask_hash(rid, 3)),
                                                                   *unmasked(tx)]))


def test_a_signature_for_another_round_or_type_does_not_post(rounds, fed, aggregator, nodes, keys):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    other_round = sign_unmask(rounds, keys[0], rid + 1, unmask_hash(rid, 0))
    # A Commitment signature over the same words is not an Unmask signature.
    commitment = rounds.commitmentDigest(rid, unmask_hash(rid, 0), 0)
    sig = Account.unsafe_sign_hash(b32(commitment), private_key=keys[1])
    as_commitment = (unmask_hash(rid, 0), *compact(sig.v, sig.r, sig.s))
    tx = rounds.submitUnmaskBatch(rid, [other_round, as_commitment], {"from": aggregator})
    assert tx.return_value == 0
    assert [reason for _, reason in skipped(tx)] == [NOT_ELIGIBLE, NOT_ELIGIBLE]
    assert addr(nodes[0]) not in [n for n, _ in skipped(tx)] and addr(nodes[1]) not in [n for n, _ in skipped(tx)]


def test_a_signature_over_the_full_unmask_typed_data_document_is_accepted(rounds, fed, aggregator, nodes, keys):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    signed = Account.sign_message(encode_typed_data(full_message=typed_unmask(rounds, rid, h("typed"))),
                                  private_key=keys[2])
    assert rounds.unmaskDigest(rid, h("typed")) == hx(signed.message_hash)
    tx = rounds.submitUnmaskBatch(rid, [(h("typed"), *compact(signed.v, signed.r, signed.s))], {"from": aggregator})
    assert_event(tx, "UnmaskSubmitted", roundId=rid, node=nodes[2], unmaskHash=h("typed"))


def test_an_empty_unmask_batch_changes_nothing(rounds, fed, aggregator, nodes):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes)
    before = phase(rounds, rid)
    tx = rounds.submitUnmaskBatch(rid, [], {"from": aggregator})
    assert tx.return_value == 0
    assert web3.eth.get_transaction_receipt(tx.txid)["logs"] == []
    assert phase(rounds, rid) == before


def test_the_unmask_relay_closes_at_the_cutoff_but_direct_posts_continue(rounds, fed, aggregator, nodes, keys):
    rid, _, unmask_deadline = sealed_round(fed, rounds, aggregator, nodes, relay_cutoff=100)
    closes_at = unmask_deadline - 100
    next_block_at(closes_at)
    entry = sign_unmask(rounds, keys[0], rid, unmask_hash(rid, 0))
    assert rounds.submitUnmaskBatch(rid, [entry], {"from": aggregator}).return_value == 1
    next_block_at(closes_at + 1)
    with reverts_with("RelayClosed", rid, closes_at):
        rounds.submitUnmaskBatch(rid, [sign_unmask(rounds, keys[1], rid, unmask_hash(rid, 1))], {"from": aggregator})
    next_block_at(unmask_deadline)
    assert event_count(post(rounds, rid, nodes, 1), "UnmaskSubmitted") == 1


def test_a_cutoff_longer_than_the_unmask_deadline_keeps_the_unmask_relay_closed(rounds, fed, aggregator, nodes, keys):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, relay_cutoff=2**32 - 1)
    with reverts_with("RelayClosed", rid, 0):
        rounds.submitUnmaskBatch(rid, [], {"from": aggregator})
    assert event_count(post(rounds, rid, nodes, 0), "UnmaskSubmitted") == 1


def test_unmask_batches_revert_before_the_seal_in_transparent_and_in_closed_rounds(rounds, fed, aggregator, nodes):
    with reverts_with("UnknownRound", 1):
        rounds.submitUnmaskBatch(1, [], {"from": aggregator})
    rid, _, _ = fed.open()
    with reverts_with("NotSecureRound", rid):
        rounds.submitUnmaskBatch(rid, [], {"from": aggregator})
    fed.expire(rid, aggregator)
    with reverts_with("RoundNotOpen", rid):
        rounds.submitUnmaskBatch(rid, [], {"from": aggregator})
    rid2, _, _, _ = open_secure(fed, 2)
    with reverts_with("NotSealed", rid2):
        rounds.submitUnmaskBatch(rid2, [], {"from": aggregator})


# --- the unmask accumulator ------------------------------------------------------------------
def test_unmask_views_match_their_definitions(rounds, nodes):
    assert rounds.UNMASK_TYPEHASH() == hx(keccak(text="Unmask(uint256 roundId,bytes32 unmaskHash)"))
    assert rounds.UNMASK_DOMAIN() == hx(keccak(text="fedchain/unmask"))
    assert rounds.initialUnmaskAccumulator(7) == hx(initial_unmask_accumulator(rounds, 7))
    # different from the commitment accumulator's start
    assert rounds.initialUnmaskAccumulator(7) != rounds.initialAccumulator(7)
    acc = h("acc")
    assert rounds.foldUnmask(acc, nodes[0], h("u")) == hx(fold_unmask(acc, nodes[0], h("u")))


def test_the_unmask_accumulator_is_the_fold_of_the_unmask_submitted_events(rounds, fed, aggregator, nodes, keys):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, excluded=[nodes[2]], threshold=2)
    events = unmasked(post(rounds, rid, nodes, 4))
    entries = [sign_unmask(rounds, keys[i], rid, unmask_hash(rid, i)) for i in (1, 0)]
    events += unmasked(rounds.submitUnmaskBatch(rid, entries, {"from": aggregator}))
    events += unmasked(post(rounds, rid, nodes, 3))
    assert [n for n, _ in events] == [addr(nodes[i]) for i in (4, 1, 0, 3)]
    p = phase(rounds, rid)
    assert p["unmaskCount"] == len(events) == 4
    assert p["unmaskAccumulator"] == hx(fold_unmasks(rounds, rid, events))
    # The order matters: another order gives another fold.
    assert p["unmaskAccumulator"] != hx(fold_unmasks(rounds, rid, events[::-1]))


# --- finalization and expiry -----------------------------------------------------------------
def test_finalizing_a_secure_round_needs_the_seal_and_threshold_unmaskings(rounds, fed, aggregator, nodes):
    rid, _, deadline, _ = open_secure(fed, 2)
    commit_all(fed, rid, nodes[:4])
    next_block_at(deadline + 1)
    with reverts_with("NotSealed", rid):
        fed.finalize(rid, 2)
    seal(rounds, aggregator, rid, [nodes[3]])
    with reverts_with("TooFewUnmasks", rid, 0, 2):
        fed.finalize(rid, 2)
    post(rounds, rid, nodes, 0)
    with reverts_with("TooFewUnmasks", rid, 1, 2):
        fed.finalize(rid, 2)
    post(rounds, rid, nodes, 1)
    # 4 committed, 3 survived: at most 3 accepted updates.
    with reverts_with("AcceptedExceedsCommitments", rid, 4, 3):
        fed.finalize(rid, 4)
    with reverts_with("QuorumNotReached", rid, 0, 1):
        fed.finalize(rid, 0)
    tx = fed.finalize(rid, 3)
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model", rid), reportHash=h("report", rid),
                 acceptedCount=3)
    assert round_dict(rounds, rid)["status"] == FINALIZED
    assert rounds.latestModelHash() == h("model", rid)


def test_a_secure_round_may_be_finalized_before_its_unmask_deadline(rounds, fed, aggregator, nodes):
    rid, deadline, unmask_deadline = sealed_round(fed, rounds, aggregator, nodes, threshold=2)
    post(rounds, rid, nodes, 0)
    post(rounds, rid, nodes, 1)
    tx = fed.finalize(rid, 5)
    assert web3.eth.get_block(tx.block_number)["timestamp"] < deadline < unmask_deadline
    assert round_dict(rounds, rid)["acceptedCount"] == 5


def test_a_secure_round_expires_only_after_its_unmask_deadline_and_the_grace_period(rounds, fed, outsider, nodes):
    rid, _, deadline, unmask_deadline = open_secure(fed, 2)
    commit_all(fed, rid, nodes[:2])
    next_block_at(deadline + GRACE + 1)  # a transparent round would expire here
    with reverts_with("ExpiryNotReached", rid, unmask_deadline + GRACE):
        rounds.expireRound(rid, {"from": outsider})
    next_block_at(unmask_deadline + GRACE)
    with reverts_with("ExpiryNotReached", rid, unmask_deadline + GRACE):
        rounds.expireRound(rid, {"from": outsider})
    next_block_at(unmask_deadline + GRACE + 1)
    tx = rounds.expireRound(rid, {"from": outsider})
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=outsider)
    assert round_dict(rounds, rid)["status"] == EXPIRED


def test_opening_the_next_round_expires_a_stale_secure_round_only_after_its_unmask_deadline(
        rounds, fed, aggregator, nodes, genesis):
    rid, _, _ = sealed_round(fed, rounds, aggregator, nodes, threshold=3)
    post(rounds, rid, nodes, 0)  # below the threshold: the round cannot be finalized
    unmask_deadline = phase(rounds, rid)["unmaskDeadline"]
    next_block_at(unmask_deadline + GRACE)
    with reverts_with("RoundStillOpen", rid):
        rounds.openRound(genesis, h("config", 99), params(unmask_deadline + GRACE + 1000), {"from": aggregator})
    next_block_at(unmask_deadline + GRACE + 1)
    tx = rounds.openRound(genesis, h("config", 99), params(unmask_deadline + GRACE + 1000), {"from": aggregator})
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=aggregator)
    assert tx.return_value == rid + 1
    # The expired round keeps its unmask phase as it was.
    p = phase(rounds, rid)
    assert (p["isSealed"], p["unmaskCount"], p["survivorCount"]) == (True, 1, 5)


def test_exclusion_and_posting_in_one_round_do_not_carry_over_to_the_next(rounds, fed, aggregator, nodes):
    r1, _, _ = sealed_round(fed, rounds, aggregator, nodes, excluded=[nodes[0]], threshold=2)
    post(rounds, r1, nodes, 1)
    post(rounds, r1, nodes, 2)
    fed.finalize(r1, 4)
    r2, _, _ = sealed_round(fed, rounds, aggregator, nodes, threshold=2)
    assert rounds.isSurvivor(r2, nodes[0]) and not rounds.hasUnmasked(r2, nodes[1])
    assert event_count(post(rounds, r2, nodes, 0), "UnmaskSubmitted") == 1
    assert event_count(post(rounds, r2, nodes, 1), "UnmaskSubmitted") == 1
    assert rounds.hasUnmasked(r2, nodes[1]) and not rounds.hasUnmasked(r1, nodes[1])  # the last round only
    assert not rounds.isSurvivor(r1, nodes[1])  # idem: it has committed since


# --- transparent rounds are unaffected ------------------------------------------------------
def test_a_transparent_round_runs_exactly_as_before(rounds, fed, aggregator, nodes, outsider):
    rid, _, deadline = fed.open(min_updates=2)
    events = []
    for node in nodes[:3]:
        events += submitted(fed.submit(rid, node))
    with reverts_with("NotSecureRound", rid):
        seal(rounds, aggregator, rid)
    with reverts_with("NotSecureRound", rid):
        post(rounds, rid, nodes, 0)
    # Finalize needs neither a seal nor unmaskings, and counts commitments, not survivors.
    next_block_at(deadline + 1)
    with reverts_with("AcceptedExceedsCommitments", rid, 4, 3):
        fed.finalize(rid, 4)
    assert_event(fed.finalize(rid, 3), "RoundFinalized", roundId=rid, globalModelHash=h("model", rid),
                 reportHash=h("report", rid), acceptedCount=3)
    assert rounds.checkCommitments(rid, events)
    # Expiry of a transparent round: deadline + grace, whatever an unmask window would have been.
    rid2, _, deadline2 = fed.open()
    next_block_at(deadline2 + GRACE)
    with reverts_with("ExpiryNotReached", rid2, deadline2 + GRACE):
        rounds.expireRound(rid2, {"from": outsider})
    next_block_at(deadline2 + GRACE + 1)
    assert event_count(rounds.expireRound(rid2, {"from": outsider}), "RoundExpired") == 1
    assert phase(rounds, rid2)["threshold"] == 0
