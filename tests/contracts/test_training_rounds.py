"""TrainingRounds (protocol v2): deployment, genesis, opening, direct commitments, eligibility,
the accumulator, finalization and the early-close rule, expiry, views, roles.

Relayed batches are in test_batch.py, properties in test_properties.py.
"""

import itertools
import re
from pathlib import Path

from brownie import TrainingRounds, web3
from conftest import (
    GRACE,
    MAX_SAMPLES,
    NONE,
    OPEN,
    FINALIZED,
    EXPIRED,
    ROUND_SECONDS,
    ZERO,
    ZERO_ADDRESS,
    addr,
    assert_event,
    deploy,
    event_count,
    fold,
    fold_all,
    h,
    hx,
    initial_accumulator,
    interface_id,
    next_block_at,
    now,
    params,
    reverts_with,
    role,
    round_dict,
    selected,
    submitted,
    unauthorized,
    warp,
)
from eth_abi import encode as abi_encode
from eth_utils import keccak

MAX_GRACE = 365 * 24 * 3600
UINT40_MAX = 2**40 - 1
UINT64_MAX = 2**64 - 1
HALF = 2**63  # selectionRate for a 50 % sample


# --- deployment -------------------------------------------------------------------------------
def test_constructor_sets_grace_period_roles_and_constants(admin, aggregator):
    contract = TrainingRounds.deploy(admin, 123, {"from": admin})
    assert contract.gracePeriod() == 123
    assert contract.MAX_GRACE_PERIOD() == MAX_GRACE
    assert contract.AGGREGATOR_ROLE() == "0x" + role("AGGREGATOR_ROLE").hex()
    assert contract.COMMITMENT_TYPEHASH() == "0x" + keccak(
        text="Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)").hex()
    assert contract.hasRole(role("DEFAULT_ADMIN_ROLE"), admin)
    assert contract.hasRole(role("REGISTRAR_ROLE"), admin)
    assert not contract.hasRole(role("AGGREGATOR_ROLE"), admin)
    assert not contract.hasRole(role("AGGREGATOR_ROLE"), aggregator)


def test_constructor_reverts_on_a_grace_period_above_the_maximum(admin):
    with reverts_with("InvalidGracePeriod", MAX_GRACE + 1):
        TrainingRounds.deploy(admin, MAX_GRACE + 1, {"from": admin})
    assert TrainingRounds.deploy(admin, MAX_GRACE, {"from": admin}).gracePeriod() == MAX_GRACE
    assert TrainingRounds.deploy(admin, 0, {"from": admin}).gracePeriod() == 0


def test_a_new_deployment_has_no_round_and_no_model(bare_rounds):
    assert bare_rounds.currentRoundId() == 0
    assert bare_rounds.lastFinalizedRoundId() == 0
    assert bare_rounds.genesisModelHash() == ZERO
    assert bare_rounds.latestModelHash() == ZERO
    assert set(round_dict(bare_rounds, 1).values()) == {ZERO, 0}
    assert round_dict(bare_rounds, 0)["status"] == NONE


def test_eip712_domain_is_fedchain_version_2_on_this_chain_and_address(rounds):
    fields, name, version, chain_id, verifying, salt, extensions = rounds.eip712Domain()
    assert (hx(fields), name, version, chain_id, verifying, hx(salt), list(extensions)) == (
        "0x0f", "fedchain", "2", web3.eth.chain_id, rounds.address, ZERO, [])


TRAINING_ROUNDS_FUNCTIONS = [
    "AGGREGATOR_ROLE()", "MAX_GRACE_PERIOD()", "COMMITMENT_TYPEHASH()", "setGenesisModel(bytes32)",
    "openRound(bytes32,bytes32,(uint64,uint32,uint64,uint64,uint32,uint32,uint32,uint32))",
    "submitUpdate(uint256,bytes32,uint64)",
    "submitBatch(uint256,(bytes32,uint64,bytes32,bytes32)[])", "finalizeRound(uint256,bytes32,bytes32,uint32)",
    "expireRound(uint256)", "gracePeriod()", "genesisModelHash()", "latestModelHash()", "currentRoundId()",
    "lastFinalizedRoundId()", "getRound(uint256)", "lastCommittedRound(address)", "hasCommitted(uint256,address)",
    "isSelected(uint256,address)", "isEligible(uint256,address)", "initialAccumulator(uint256)",
    "foldCommitment(bytes32,address,bytes32,uint64)", "checkCommitments(uint256,(address,bytes32,uint64)[])",
    "commitmentDigest(uint256,bytes32,uint64)",
    # secure rounds
    "UNMASK_TYPEHASH()", "UNMASK_DOMAIN()", "sealCommitments(uint256,address[],uint32)", "submitUnmask(uint256,bytes32)",
    "submitUnmaskBatch(uint256,(bytes32,bytes32,bytes32)[])", "getUnmaskPhase(uint256)",
    "isSurvivor(uint256,address)", "hasUnmasked(uint256,address)", "initialUnmaskAccumulator(uint256)",
    "foldUnmask(bytes32,address,bytes32)", "unmaskDigest(uint256,bytes32)",
]
NODE_REGISTRY_FUNCTIONS = [
    "REGISTRAR_ROLE()", "admitNode(address,bytes,bytes32)", "removeNode(address)", "setOpenRegistration(bool)",
    "openRegistration()", "register(bytes,bytes32)", "updateNode(bytes,bytes32)", "isActiveNode(address)",
    "nodeCount()", "getNode(address)",
]


def test_supports_both_protocol_interfaces_access_control_and_erc165(rounds):
    assert rounds.supportsInterface(interface_id(TRAINING_ROUNDS_FUNCTIONS))
    assert rounds.supportsInterface(interface_id(NODE_REGISTRY_FUNCTIONS))
    assert rounds.supportsInterface("0x7965db0b")  # IAccessControl
    assert rounds.supportsInterface("0x01ffc9a7")  # IERC165
    assert not rounds.supportsInterface("0xffffffff")
    # The v1 interface (openRound with a deadline and a quorum, getCommitment) is gone.
    v1 = [s for s in TRAINING_ROUNDS_FUNCTIONS if not s.startswith("openRound")] + [
        "openRound(bytes32,bytes32,uint64,uint32)"]
    assert not rounds.supportsInterface(interface_id(v1))


# --- genesis ----------------------------------------------------------------------------------
def test_set_genesis_model_stores_it_and_emits_genesis_model_set(bare_rounds, admin, genesis):
    tx = bare_rounds.setGenesisModel(genesis, {"from": admin})
    assert_event(tx, "GenesisModelSet", modelHash=genesis)
    assert bare_rounds.genesisModelHash() == genesis
    assert bare_rounds.latestModelHash() == genesis


def test_set_genesis_reverts_for_a_non_admin(bare_rounds, aggregator, outsider, genesis):
    for account in (aggregator, outsider):
        with reverts_with(*unauthorized(account, "DEFAULT_ADMIN_ROLE")):
            bare_rounds.setGenesisModel(genesis, {"from": account})


def test_set_genesis_reverts_on_the_zero_hash(bare_rounds, admin):
    with reverts_with("ZeroHash"):
        bare_rounds.setGenesisModel(ZERO, {"from": admin})


def test_set_genesis_reverts_when_already_set(rounds, admin):
    with reverts_with("GenesisAlreadySet"):
        rounds.setGenesisModel(h("other genesis"), {"from": admin})


def test_open_round_reverts_before_the_genesis_model_is_set(bare_rounds, aggregator):
    with reverts_with("GenesisNotSet"):
        bare_rounds.openRound(ZERO, h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})


# --- openRound --------------------------------------------------------------------------------
def test_open_round_creates_round_1_snapshots_eligible_nodes_and_emits_round_opened(rounds, aggregator, genesis):
    deadline = now() + ROUND_SECONDS
    p = params(deadline, 3, 5000, 0, 120)
    tx = rounds.openRound(genesis, h("config"), p, {"from": aggregator})
    assert tx.return_value == 1
    assert_event(tx, "RoundOpened", roundId=1, baseModelHash=genesis, configHash=h("config"), params=p,
                 eligibleCount=5, seed=ZERO)
    assert rounds.currentRoundId() == 1
    assert rounds.lastFinalizedRoundId() == 0
    assert round_dict(rounds, 1) == dict(
        baseModelHash=genesis, configHash=h("config"), globalModelHash=ZERO, reportHash=ZERO,
        accumulator=hx(initial_accumulator(rounds, 1)), seed=ZERO, deadline=deadline, openedAt=tx.block_number,
        closedAt=0, minUpdates=3, eligibleCount=5, commitCount=0, acceptedCount=0, maxSamples=5000,
        selectionRate=0, relayCutoff=120, closeWindow=0, status=OPEN,
    )


def test_open_round_eligible_count_is_the_active_node_count_at_opening(rounds, fed, admin, nodes, outsider):
    rounds.removeNode(nodes[0], {"from": admin})
    rounds.removeNode(nodes[1], {"from": admin})
    rid, tx, _ = fed.open()
    assert round_dict(rounds, rid)["eligibleCount"] == 3
    rounds.admitNode(outsider, b"", ZERO, {"from": admin})  # during the round: not in the snapshot
    assert round_dict(rounds, rid)["eligibleCount"] == 3
    assert rounds.nodeCount() == 4


def test_open_round_reverts_when_an_unsampled_quorum_is_unreachable(rounds, fed, aggregator, admin, genesis, nodes):
    with reverts_with("QuorumUnreachable", 5, 6):
        rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 6), {"from": aggregator})
    rounds.removeNode(nodes[0], {"from": admin})
    with reverts_with("QuorumUnreachable", 4, 5):
        rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 5), {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 4), {"from": aggregator})
    assert round_dict(rounds, tx.return_value)["minUpdates"] == 4


def test_a_sampled_round_may_ask_for_more_updates_than_nodes(rounds, aggregator, genesis):
    tx = rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 6, selection_rate=HALF),
                          {"from": aggregator})
    assert round_dict(rounds, tx.return_value)["minUpdates"] == 6


def test_a_sampled_round_takes_its_seed_from_prevrandao_and_the_round_id(rounds, aggregator, genesis):
    deadline = now() + ROUND_SECONDS
    p = params(deadline, 1, 77, HALF, 10)
    tx = rounds.openRound(genesis, h("config"), p, {"from": aggregator})
    prevrandao = bytes(web3.eth.get_block(tx.block_number)["mixHash"])
    seed = "0x" + keccak(abi_encode(["bytes32", "uint256"], [prevrandao, 1])).hex()
    assert_event(tx, "RoundOpened", roundId=1, baseModelHash=genesis, configHash=h("config"), params=p,
                 eligibleCount=5, seed=seed)
    r = round_dict(rounds, 1)
    assert (r["seed"], r["selectionRate"], r["maxSamples"], r["relayCutoff"]) == (seed, HALF, 77, 10)


def test_open_round_reverts_for_an_account_without_aggregator_role(rounds, admin, outsider, nodes, genesis):
    for account in (admin, outsider, nodes[0]):
        with reverts_with(*unauthorized(account, "AGGREGATOR_ROLE")):
            rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS), {"from": account})


def test_open_round_reverts_on_zero_min_updates_or_zero_max_samples(rounds, aggregator, genesis):
    with reverts_with("InvalidMinUpdates", 0):
        rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 0), {"from": aggregator})
    with reverts_with("InvalidMaxSamples", 0):
        rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS, 1, 0), {"from": aggregator})


def test_open_round_reverts_on_a_deadline_that_is_not_in_the_future(rounds, aggregator, genesis):
    t = now() + 10
    next_block_at(t)
    with reverts_with("InvalidDeadline", t):
        rounds.openRound(genesis, h("config"), params(t), {"from": aggregator})
    with reverts_with("InvalidDeadline", 1):
        rounds.openRound(genesis, h("config"), params(1), {"from": aggregator})
    next_block_at(now() + 10)
    tx = rounds.openRound(genesis, h("config"), params(now() + 11), {"from": aggregator})  # one second ahead
    assert tx.return_value == 1


def test_open_round_reverts_on_a_deadline_beyond_40_bits(rounds, aggregator, genesis):
    with reverts_with("InvalidDeadline", UINT40_MAX + 1):
        rounds.openRound(genesis, h("config"), params(UINT40_MAX + 1), {"from": aggregator})
    with reverts_with("InvalidDeadline", UINT64_MAX):
        rounds.openRound(genesis, h("config"), params(UINT64_MAX), {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), params(UINT40_MAX), {"from": aggregator})
    assert round_dict(rounds, tx.return_value)["deadline"] == UINT40_MAX


def test_open_round_reverts_on_a_zero_config_hash(rounds, aggregator, genesis):
    with reverts_with("ZeroHash"):
        rounds.openRound(genesis, ZERO, params(now() + ROUND_SECONDS), {"from": aggregator})


def test_open_round_reverts_when_the_base_is_not_the_latest_model(rounds, aggregator, genesis):
    with reverts_with("BaseModelMismatch", genesis, h("stale")):
        rounds.openRound(h("stale"), h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})


def test_open_round_reverts_while_the_current_round_is_open(rounds, fed, aggregator, genesis):
    rid, _, deadline = fed.open()
    with reverts_with("RoundStillOpen", rid):
        rounds.openRound(genesis, h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})
    # Past the deadline but within the grace period, the aggregator may still finalize.
    next_block_at(deadline + GRACE)
    with reverts_with("RoundStillOpen", rid):
        rounds.openRound(genesis, h("config"), params(deadline + GRACE + ROUND_SECONDS), {"from": aggregator})


def test_open_round_expires_an_expirable_current_round_first(rounds, fed, aggregator, nodes, genesis):
    rid, _, deadline = fed.open()
    fed.submit(rid, nodes[0])
    next_block_at(deadline + GRACE + 1)
    p = params(deadline + GRACE + ROUND_SECONDS)
    tx = rounds.openRound(genesis, h("config", 2), p, {"from": aggregator})
    assert tx.return_value == rid + 1
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=aggregator)
    assert_event(tx, "RoundOpened", roundId=rid + 1, baseModelHash=genesis, configHash=h("config", 2), params=p,
                 eligibleCount=5, seed=ZERO)
    previous = round_dict(rounds, rid)
    assert (previous["status"], previous["closedAt"], previous["commitCount"]) == (EXPIRED, tx.block_number, 1)
    assert round_dict(rounds, rid + 1)["status"] == OPEN


def test_open_round_after_a_finalized_round_starts_from_its_model(rounds, fed, aggregator):
    r1 = fed.full_round()
    assert rounds.latestModelHash() == h("model", r1)
    with reverts_with("BaseModelMismatch", h("model", r1), rounds.genesisModelHash()):
        rounds.openRound(rounds.genesisModelHash(), h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})
    r2, _, _ = fed.open()
    assert r2 == r1 + 1
    assert round_dict(rounds, r2)["baseModelHash"] == h("model", r1)


def test_open_round_after_an_expired_round_starts_from_the_last_finalized_model(rounds, fed, outsider, genesis):
    r1 = fed.full_round()
    r2, _, _ = fed.open()
    fed.expire(r2, outsider)
    r3, _, _ = fed.open(base=h("model", r1))
    assert r3 == 3
    assert round_dict(rounds, r3)["baseModelHash"] == h("model", r1)
    assert round_dict(rounds, r2)["baseModelHash"] == h("model", r1)
    assert round_dict(rounds, r1)["baseModelHash"] == genesis


# --- submitUpdate -----------------------------------------------------------------------------
def test_submit_update_folds_the_commitment_and_emits_update_submitted(rounds, fed, nodes):
    rid, _, _ = fed.open()
    tx = rounds.submitUpdate(rid, h("update"), 1234, {"from": nodes[0]})
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=nodes[0], updateHash=h("update"), numSamples=1234)
    r = round_dict(rounds, rid)
    assert r["commitCount"] == 1
    assert r["accumulator"] == hx(fold(initial_accumulator(rounds, rid), nodes[0], h("update"), 1234))
    assert rounds.lastCommittedRound(nodes[0]) == rid
    assert rounds.hasCommitted(rid, nodes[0]) and not rounds.hasCommitted(rid, nodes[1])


def test_submit_reverts_for_an_account_that_is_not_a_node(rounds, fed, outsider, aggregator):
    rid, _, _ = fed.open()
    for account in (outsider, aggregator):
        with reverts_with("NotEligible", rid, account):
            rounds.submitUpdate(rid, h("update"), 10, {"from": account})


def test_submit_reverts_for_a_removed_node(rounds, fed, admin, nodes):
    rid, _, _ = fed.open()
    rounds.removeNode(nodes[0], {"from": admin})
    with reverts_with("NotEligible", rid, nodes[0]):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})
    assert not rounds.isEligible(rid, nodes[0])


def test_commitments_survive_the_removal_of_their_node(rounds, fed, admin, aggregator, nodes):
    rid, _, _ = fed.open()
    tx = fed.submit(rid, nodes[0], 77)
    rounds.removeNode(nodes[0], {"from": admin})
    # Every node that was eligible at opening has not committed: the round runs to its deadline.
    with reverts_with("CommitPhaseOpen", rid, 1, 5, round_dict(rounds, rid)["deadline"]):
        fed.finalize(rid, 1)
    warp(round_dict(rounds, rid)["deadline"] + 1)
    fed.finalize(rid, 1)
    assert rounds.checkCommitments(rid, submitted(tx))
    assert rounds.lastCommittedRound(nodes[0]) == rid
    assert round_dict(rounds, rid)["acceptedCount"] == 1


def test_a_node_admitted_during_a_round_is_eligible_from_the_next_round(rounds, fed, admin, outsider):
    rid, _, deadline = fed.open()
    rounds.admitNode(outsider, b"", ZERO, {"from": admin})
    assert rounds.isActiveNode(outsider) and not rounds.isEligible(rid, outsider)
    with reverts_with("NotEligible", rid, outsider):
        rounds.submitUpdate(rid, h("late"), 5, {"from": outsider})
    fed.expire(rid, outsider)  # nobody committed: the round lapses
    rid2, _, _ = fed.open()
    assert rounds.isEligible(rid2, outsider)
    tx = rounds.submitUpdate(rid2, h("late"), 5, {"from": outsider})
    assert_event(tx, "UpdateSubmitted", roundId=rid2, node=outsider, updateHash=h("late"), numSamples=5)


def test_a_node_removed_and_readmitted_in_the_same_round_waits_for_the_next_round(rounds, fed, admin, nodes):
    rid, _, _ = fed.open()
    assert rounds.isEligible(rid, nodes[0])
    rounds.removeNode(nodes[0], {"from": admin})
    rounds.admitNode(nodes[0], b"", ZERO, {"from": admin})
    assert rounds.getNode(nodes[0])[2] == rid  # joinedRound
    assert not rounds.isEligible(rid, nodes[0])
    with reverts_with("NotEligible", rid, nodes[0]):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})


def test_a_readmitted_node_that_committed_cannot_commit_again(rounds, fed, admin, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
    rounds.removeNode(nodes[0], {"from": admin})
    rounds.admitNode(nodes[0], b"", ZERO, {"from": admin})
    with reverts_with("AlreadySubmitted", rid, nodes[0]):
        rounds.submitUpdate(rid, h("again"), 10, {"from": nodes[0]})
    assert round_dict(rounds, rid)["commitCount"] == 1


def test_submit_reverts_when_the_node_already_committed_in_the_round(rounds, fed, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0], 10)
    acc = round_dict(rounds, rid)["accumulator"]
    with reverts_with("AlreadySubmitted", rid, nodes[0]):
        rounds.submitUpdate(rid, h("second try"), 11, {"from": nodes[0]})
    assert round_dict(rounds, rid)["commitCount"] == 1
    assert round_dict(rounds, rid)["accumulator"] == acc


def test_a_node_commits_again_in_the_next_round(rounds, fed, nodes):
    r1 = fed.full_round()
    r2, _, _ = fed.open()
    assert rounds.hasCommitted(r1, nodes[0]) and not rounds.hasCommitted(r2, nodes[0])
    fed.submit(r2, nodes[0])
    assert rounds.lastCommittedRound(nodes[0]) == r2
    assert rounds.hasCommitted(r2, nodes[0])
    assert not rounds.hasCommitted(0, nodes[0]) and not rounds.hasCommitted(0, nodes[4])


def test_submit_is_accepted_at_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open()
    next_block_at(deadline)
    tx = fed.submit(rid, nodes[0])
    assert web3.eth.get_block(tx.block_number)["timestamp"] == deadline


def test_submit_reverts_after_the_deadline(rounds, fed, nodes):
    rid, _, deadline = fed.open()
    next_block_at(deadline + 1)
    with reverts_with("DeadlinePassed", rid, deadline):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})
    assert round_dict(rounds, rid)["commitCount"] == 0


def test_submit_reverts_on_a_zero_hash(rounds, fed, nodes):
    rid, _, _ = fed.open()
    with reverts_with("ZeroHash"):
        rounds.submitUpdate(rid, ZERO, 10, {"from": nodes[0]})


def test_submit_reverts_on_zero_samples(rounds, fed, nodes):
    rid, _, _ = fed.open()
    with reverts_with("ZeroSamples"):
        rounds.submitUpdate(rid, h("update"), 0, {"from": nodes[0]})


def test_submit_reverts_above_the_rounds_sample_cap(rounds, fed, nodes):
    rid, _, _ = fed.open(max_samples=500)
    with reverts_with("TooManySamples", rid, 501, 500):
        rounds.submitUpdate(rid, h("update"), 501, {"from": nodes[0]})
    with reverts_with("TooManySamples", rid, UINT64_MAX, 500):
        rounds.submitUpdate(rid, h("update"), UINT64_MAX, {"from": nodes[0]})
    tx = rounds.submitUpdate(rid, h("update"), 500, {"from": nodes[0]})
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=nodes[0], updateHash=h("update"), numSamples=500)


def test_submit_reverts_for_a_round_that_was_never_opened(rounds, fed, nodes):
    for rid in (0, 1, 2**256 - 1):
        with reverts_with("UnknownRound", rid):
            rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})
    rid, _, _ = fed.open()
    with reverts_with("UnknownRound", rid + 1):
        rounds.submitUpdate(rid + 1, h("update"), 10, {"from": nodes[0]})


def test_submit_reverts_for_a_finalized_round(rounds, fed, nodes):
    rid = fed.full_round(nodes[:1])
    with reverts_with("RoundNotOpen", rid):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[1]})


def test_submit_reverts_for_an_expired_round(rounds, fed, nodes, outsider):
    rid, _, _ = fed.open()
    fed.expire(rid, outsider)
    with reverts_with("RoundNotOpen", rid):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})


# --- sampled rounds: isSelected / isEligible ---------------------------------------------------
def test_selection_follows_the_documented_formula(rounds, fed, nodes, outsider):
    rid, _, _ = fed.open(selection_rate=HALF)
    seed = round_dict(rounds, rid)["seed"]
    assert seed != ZERO
    for account in [*nodes, outsider]:
        assert rounds.isSelected(rid, account) == selected(seed, HALF, account), account
        assert rounds.isEligible(rid, account) == (account != outsider and selected(seed, HALF, account))


def test_a_node_that_is_not_selected_cannot_commit_and_a_selected_one_can(rounds, fed, nodes):
    # 1/2^64 would select nobody in practice; 2^64 - 1 selects everyone in practice. Check both ends.
    rid, _, deadline = fed.open(selection_rate=1)
    seed = round_dict(rounds, rid)["seed"]
    for node in nodes:
        assert rounds.isSelected(rid, node) == selected(seed, 1, node) is False
    with reverts_with("NotEligible", rid, nodes[0]):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})
    warp(deadline + GRACE + 1)
    rid2, _, _ = fed.open(selection_rate=2**64 - 1)
    seed2 = round_dict(rounds, rid2)["seed"]
    assert all(rounds.isSelected(rid2, n) == selected(seed2, 2**64 - 1, n) is True for n in nodes)
    tx = rounds.submitUpdate(rid2, h("update"), 10, {"from": nodes[0]})
    assert event_count(tx, "UpdateSubmitted") == 1


def test_an_unsampled_round_selects_every_account(rounds, fed, nodes, outsider):
    rid, _, _ = fed.open()
    assert all(rounds.isSelected(rid, a) for a in [*nodes, outsider, ZERO_ADDRESS])
    assert all(rounds.isEligible(rid, n) for n in nodes)
    assert not rounds.isEligible(rid, outsider)


def test_selection_views_revert_for_a_round_that_was_never_opened(rounds, nodes, outsider):
    with reverts_with("UnknownRound", 1):
        rounds.isSelected(1, nodes[0])
    with reverts_with("UnknownRound", 1):
        rounds.isEligible(1, nodes[0])
    assert rounds.isEligible(1, outsider) is False  # not a member: no need to look at the round


# --- the accumulator --------------------------------------------------------------------------
def test_initial_accumulator_and_fold_match_their_definitions(rounds, nodes):
    assert rounds.initialAccumulator(7) == hx(initial_accumulator(rounds, 7))
    acc = h("acc")
    assert rounds.foldCommitment(acc, nodes[0], h("u"), UINT64_MAX) == hx(fold(acc, nodes[0], h("u"), UINT64_MAX))


def test_accumulator_is_the_fold_of_the_update_submitted_events(rounds, fed, nodes):
    rid, _, _ = fed.open()
    events = []
    for i, node in enumerate([nodes[3], nodes[0], nodes[4]]):
        events += submitted(rounds.submitUpdate(rid, h("u", i), 10 + i, {"from": node}))
    events += submitted(fed.batch(rid, [fed.signed(rid, nodes[1], 7), fed.signed(rid, nodes[2], 8)]))
    assert [e[0] for e in events] == [addr(n) for n in (nodes[3], nodes[0], nodes[4], nodes[1], nodes[2])]
    assert round_dict(rounds, rid)["accumulator"] == hx(fold_all(rounds, rid, events))
    assert rounds.checkCommitments(rid, events)


def test_check_commitments_rejects_a_permuted_altered_short_or_long_list(rounds, fed, nodes):
    rid, _, _ = fed.open()
    events = []
    for i, node in enumerate(nodes[:3]):
        events += submitted(rounds.submitUpdate(rid, h("u", i), 10 + i, {"from": node}))
    assert rounds.checkCommitments(rid, events)
    for perm in itertools.permutations(events):
        assert rounds.checkCommitments(rid, list(perm)) == (list(perm) == events)
    node, update, samples = events[1]
    for altered in [(addr(nodes[4]), update, samples), (node, h("other"), samples), (node, update, samples + 1)]:
        assert not rounds.checkCommitments(rid, [events[0], altered, events[2]])
    assert not rounds.checkCommitments(rid, events[:2])
    assert not rounds.checkCommitments(rid, events + [(addr(nodes[4]), h("x"), 1)])
    assert not rounds.checkCommitments(rid, events[:2] + [events[1]])


def test_check_commitments_of_an_empty_round_and_of_an_unknown_round(rounds, fed, nodes):
    rid, _, _ = fed.open()
    assert rounds.checkCommitments(rid, [])
    assert not rounds.checkCommitments(rid, [(addr(nodes[0]), h("u"), 1)])
    with reverts_with("UnknownRound", rid + 1):
        rounds.checkCommitments(rid + 1, [])


def test_accumulators_of_different_rounds_and_deployments_differ(rounds, fed, admin, nodes):
    r1 = fed.full_round()
    r2, _, _ = fed.open()
    assert round_dict(rounds, r2)["accumulator"] == hx(initial_accumulator(rounds, r2))
    assert initial_accumulator(rounds, r1) != initial_accumulator(rounds, r2)
    other = deploy(admin)
    assert other.initialAccumulator(r1) != rounds.initialAccumulator(r1)


# --- finalizeRound and the early-close rule ---------------------------------------------------
def test_finalize_round_records_the_result_and_emits_round_finalized(rounds, fed, aggregator, nodes):
    rid, opened, deadline = fed.open(min_updates=2)
    for node in nodes[:3]:
        fed.submit(rid, node)
    warp(deadline + 1)
    acc = round_dict(rounds, rid)["accumulator"]
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model"), reportHash=h("report"), acceptedCount=2)
    assert round_dict(rounds, rid) == dict(
        baseModelHash=rounds.genesisModelHash(), configHash=h("config", fed._n), globalModelHash=h("model"),
        reportHash=h("report"), accumulator=acc, seed=ZERO, deadline=deadline, openedAt=opened.block_number,
        closedAt=tx.block_number, minUpdates=2, eligibleCount=5, commitCount=3, acceptedCount=2,
        maxSamples=MAX_SAMPLES, selectionRate=0, relayCutoff=0, closeWindow=0, status=FINALIZED,
    )
    assert rounds.latestModelHash() == h("model")
    assert rounds.lastFinalizedRoundId() == rid


def test_early_finalize_reverts_while_one_eligible_node_has_not_committed(rounds, fed, aggregator, nodes):
    rid, _, deadline = fed.open(min_updates=2)
    for node in nodes[:4]:
        fed.submit(rid, node)
    with reverts_with("CommitPhaseOpen", rid, 4, 5, deadline):
        rounds.finalizeRound(rid, h("model"), h("report"), 4, {"from": aggregator})
    next_block_at(deadline)  # the deadline itself still belongs to the commit phase
    with reverts_with("CommitPhaseOpen", rid, 4, 5, deadline):
        rounds.finalizeRound(rid, h("model"), h("report"), 4, {"from": aggregator})
    next_block_at(deadline + 1)
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 4, {"from": aggregator})
    assert event_count(tx, "RoundFinalized") == 1


def test_early_finalize_is_allowed_once_every_eligible_node_committed(rounds, fed, aggregator, nodes):
    rid, _, deadline = fed.open(min_updates=2)
    for node in nodes[:4]:
        fed.submit(rid, node)
    fed.batch(rid, [fed.signed(rid, nodes[4])])
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 3, {"from": aggregator})
    assert web3.eth.get_block(tx.block_number)["timestamp"] < deadline
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model"), reportHash=h("report"), acceptedCount=3)


def test_a_removed_node_still_counts_as_eligible_for_the_early_close(rounds, fed, admin, aggregator, nodes):
    rid, _, deadline = fed.open()
    rounds.removeNode(nodes[4], {"from": admin})
    for node in nodes[:4]:
        fed.submit(rid, node)
    with reverts_with("CommitPhaseOpen", rid, 4, 5, deadline):
        rounds.finalizeRound(rid, h("model"), h("report"), 4, {"from": aggregator})


def test_a_sampled_round_is_never_finalized_before_its_deadline(rounds, fed, aggregator, nodes):
    rid, _, deadline = fed.open(selection_rate=2**64 - 1)  # in practice everyone is selected
    for node in nodes:
        fed.submit(rid, node)
    assert round_dict(rounds, rid)["commitCount"] == round_dict(rounds, rid)["eligibleCount"] == 5
    with reverts_with("CommitPhaseOpen", rid, 5, 5, deadline):
        rounds.finalizeRound(rid, h("model"), h("report"), 5, {"from": aggregator})
    next_block_at(deadline + 1)
    assert event_count(rounds.finalizeRound(rid, h("model"), h("report"), 5, {"from": aggregator}),
                       "RoundFinalized") == 1


def test_finalize_is_allowed_after_the_grace_period_until_someone_expires_the_round(rounds, fed, nodes, outsider):
    rid, _, deadline = fed.open()
    fed.submit(rid, nodes[0])
    next_block_at(deadline + GRACE + 1000)
    tx = fed.finalize(rid)
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model", rid), reportHash=h("report", rid),
                 acceptedCount=1)
    with reverts_with("RoundNotOpen", rid):
        rounds.expireRound(rid, {"from": outsider})


def test_finalize_reverts_for_an_account_without_aggregator_role(rounds, fed, admin, outsider, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
    for account in (admin, outsider, nodes[0]):
        with reverts_with(*unauthorized(account, "AGGREGATOR_ROLE")):
            rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": account})


def test_finalize_reverts_below_the_quorum(rounds, fed, aggregator, nodes):
    rid, _, _ = fed.open(min_updates=3)
    for node in nodes[:3]:
        fed.submit(rid, node)
    with reverts_with("QuorumNotReached", rid, 2, 3):
        rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    with reverts_with("QuorumNotReached", rid, 0, 3):
        rounds.finalizeRound(rid, h("model"), h("report"), 0, {"from": aggregator})


def test_finalize_reverts_when_accepted_exceeds_commitments(rounds, fed, aggregator, nodes):
    rid, _, _ = fed.open(min_updates=1)
    fed.submit(rid, nodes[0])
    with reverts_with("AcceptedExceedsCommitments", rid, 2, 1):
        rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})


def test_finalize_reverts_on_zero_hashes(rounds, fed, aggregator, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
    for model, report in ((ZERO, h("report")), (h("model"), ZERO)):
        with reverts_with("ZeroHash"):
            rounds.finalizeRound(rid, model, report, 1, {"from": aggregator})


def test_finalize_reverts_for_an_already_finalized_round(rounds, fed, aggregator, nodes):
    rid = fed.full_round(nodes[:1])
    with reverts_with("RoundNotOpen", rid):
        rounds.finalizeRound(rid, h("model", 2), h("report", 2), 1, {"from": aggregator})


def test_finalize_reverts_for_an_expired_round(rounds, fed, aggregator, nodes, outsider):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
    fed.expire(rid, outsider)
    with reverts_with("RoundNotOpen", rid):
        rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})


def test_finalize_reverts_for_a_round_that_was_never_opened(rounds, aggregator):
    with reverts_with("UnknownRound", 1):
        rounds.finalizeRound(1, h("model"), h("report"), 1, {"from": aggregator})


# --- expireRound ------------------------------------------------------------------------------
def test_expire_reverts_until_the_grace_period_has_passed(rounds, fed, outsider):
    rid, _, deadline = fed.open()
    with reverts_with("ExpiryNotReached", rid, deadline + GRACE):
        rounds.expireRound(rid, {"from": outsider})
    next_block_at(deadline + GRACE)
    with reverts_with("ExpiryNotReached", rid, deadline + GRACE):
        rounds.expireRound(rid, {"from": outsider})


def test_expire_round_by_anyone_closes_it_and_emits_round_expired(rounds, fed, nodes, outsider, genesis):
    rid, opened, deadline = fed.open(min_updates=2)
    tx = fed.submit(rid, nodes[0])
    events = submitted(tx)
    next_block_at(deadline + GRACE + 1)
    tx = rounds.expireRound(rid, {"from": outsider})
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=outsider)
    assert round_dict(rounds, rid) == dict(
        baseModelHash=genesis, configHash=h("config", fed._n), globalModelHash=ZERO, reportHash=ZERO,
        accumulator=hx(fold_all(rounds, rid, events)), seed=ZERO, deadline=deadline, openedAt=opened.block_number,
        closedAt=tx.block_number, minUpdates=2, eligibleCount=5, commitCount=1, acceptedCount=0,
        maxSamples=MAX_SAMPLES, selectionRate=0, relayCutoff=0, closeWindow=0, status=EXPIRED,
    )
    assert rounds.latestModelHash() == genesis
    assert rounds.lastFinalizedRoundId() == 0
    assert rounds.checkCommitments(rid, events)


def test_expire_reverts_for_an_already_expired_round(rounds, fed, outsider):
    rid, _, _ = fed.open()
    fed.expire(rid, outsider)
    with reverts_with("RoundNotOpen", rid):
        rounds.expireRound(rid, {"from": outsider})


def test_expire_reverts_for_a_finalized_round(rounds, fed, nodes, outsider):
    rid = fed.full_round(nodes[:1])
    warp(now() + ROUND_SECONDS + GRACE + 1)
    with reverts_with("RoundNotOpen", rid):
        rounds.expireRound(rid, {"from": outsider})


def test_expire_reverts_for_a_round_that_was_never_opened(rounds, outsider):
    with reverts_with("UnknownRound", 7):
        rounds.expireRound(7, {"from": outsider})


def test_a_zero_grace_period_allows_expiry_one_second_after_the_deadline(admin, aggregator, nodes, outsider):
    contract = deploy(admin, aggregator, grace=0)
    contract.admitNode(nodes[0], b"", ZERO, {"from": admin})
    contract.setGenesisModel(h("g"), {"from": admin})
    deadline = now() + 100
    contract.openRound(h("g"), h("config"), params(deadline), {"from": aggregator})
    next_block_at(deadline)
    with reverts_with("ExpiryNotReached", 1, deadline):
        contract.expireRound(1, {"from": outsider})
    next_block_at(deadline + 1)
    assert event_count(contract.expireRound(1, {"from": outsider}), "RoundExpired") == 1


# --- roles ------------------------------------------------------------------------------------
def test_a_revoked_aggregator_can_no_longer_open_or_finalize(rounds, fed, admin, aggregator, nodes):
    rid, _, _ = fed.open()
    for node in nodes:
        fed.submit(rid, node)
    rounds.revokeRole(role("AGGREGATOR_ROLE"), aggregator, {"from": admin})
    with reverts_with(*unauthorized(aggregator, "AGGREGATOR_ROLE")):
        rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})
    rounds.grantRole(role("AGGREGATOR_ROLE"), admin, {"from": admin})
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": admin})
    assert event_count(tx, "RoundFinalized") == 1


def test_role_changes_emit_access_control_events(rounds, admin, outsider):
    aggregator_role = role("AGGREGATOR_ROLE")
    tx = rounds.grantRole(aggregator_role, outsider, {"from": admin})
    assert_event(tx, "RoleGranted", role=aggregator_role, account=outsider, sender=admin)
    tx = rounds.renounceRole(aggregator_role, outsider, {"from": outsider})
    assert_event(tx, "RoleRevoked", role=aggregator_role, account=outsider, sender=outsider)
    assert not rounds.hasRole(aggregator_role, outsider)


def test_renounce_role_reverts_on_bad_confirmation(rounds, aggregator, outsider):
    with reverts_with("AccessControlBadConfirmation"):
        rounds.renounceRole(role("AGGREGATOR_ROLE"), outsider, {"from": aggregator})


# --- the test suite itself ------------------------------------------------------------------
# SafeCast's errors guard `uint40(block.number)` and `uint32(nodeCount())`: unreachable before
# block 2^40 (~1.1e12) or 2^32 nodes. OpenZeppelin's ECDSA/EIP712/ShortStrings errors belong to
# code paths the contract does not use (it recovers signatures itself; its name is short).
UNREACHABLE = {"SafeCastOverflowedUintDowncast", "ECDSAInvalidSignature", "ECDSAInvalidSignatureLength",
               "ECDSAInvalidSignatureS", "InvalidShortString", "StringTooLong"}


def _suite_source() -> str:
    return "\n".join(p.read_text() for p in sorted(Path(__file__).parent.glob("test_*.py")))


def test_every_custom_error_of_the_contract_is_asserted_by_a_test():
    source = _suite_source()
    asserted = set(re.findall(r'reverts_with\(\s*"(\w+)"', source))
    if "*unauthorized(" in source:
        asserted.add("AccessControlUnauthorizedAccount")
    declared = {item["name"] for item in TrainingRounds.abi if item["type"] == "error"}
    assert "CommitPhaseOpen" in declared and "RelayClosed" in declared
    assert declared - asserted - UNREACHABLE == set()


def test_every_event_of_the_contract_is_asserted_by_a_test():
    source = _suite_source()
    asserted = set(re.findall(r'assert_event\(\s*\w+,\s*"(\w+)"', source))
    declared = {item["name"] for item in TrainingRounds.abi if item["type"] == "event"}
    assert {"NodeAdmitted", "CommitmentSkipped", "RoundOpened"} <= declared
    # RoleAdminChanged is only emitted by _setRoleAdmin, never called; EIP712DomainChanged by
    # nothing in this contract (its domain never changes).
    assert declared - asserted == {"RoleAdminChanged", "EIP712DomainChanged"}
