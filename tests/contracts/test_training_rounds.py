"""TrainingRounds: genesis, opening, commitments, finalization, expiry, views, roles."""

import re
from pathlib import Path

from brownie import TrainingRounds, chain, web3
from conftest import (
    GRACE,
    ROUND_SECONDS,
    ZERO,
    assert_event,
    event_count,
    h,
    interface_id,
    next_block_at,
    now,
    reverts_with,
    role,
    unauthorized,
)

ZERO_ADDRESS = "0x" + "00" * 20
NONE, OPEN, FINALIZED, EXPIRED = 0, 1, 2, 3
MAX_GRACE = 365 * 24 * 3600
UINT40_MAX = 2**40 - 1
UINT64_MAX = 2**64 - 1


def _hex(value) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes) else str(value).lower()


def round_dict(rounds, round_id):
    fields = ("baseModelHash", "configHash", "globalModelHash", "reportHash", "deadline", "openedAt", "closedAt",
              "minUpdates", "commitCount", "acceptedCount", "status")
    values = rounds.getRound(round_id)
    return {k: (_hex(v) if i < 4 else int(v)) for i, (k, v) in enumerate(zip(fields, values))}


def commitment(rounds, round_id, node):
    update_hash, samples = rounds.getCommitment(round_id, node)
    return _hex(update_hash), int(samples)


def open_args(rounds, *, config=None, seconds=ROUND_SECONDS, min_updates=1):
    return (rounds.latestModelHash(), config or h("config"), now() + seconds, min_updates)


# --- deployment -------------------------------------------------------------------------------
def test_constructor_sets_registry_grace_period_and_admin(registry, admin, aggregator):
    contract = TrainingRounds.deploy(registry, admin, 123, {"from": admin})
    assert contract.registry() == registry.address
    assert contract.gracePeriod() == 123
    assert contract.MAX_GRACE_PERIOD() == MAX_GRACE
    assert contract.AGGREGATOR_ROLE() == "0x" + role("AGGREGATOR_ROLE").hex()
    assert contract.hasRole(role("DEFAULT_ADMIN_ROLE"), admin)
    assert not contract.hasRole(role("AGGREGATOR_ROLE"), admin)
    assert not contract.hasRole(role("AGGREGATOR_ROLE"), aggregator)


def test_constructor_reverts_on_a_zero_registry_or_admin(registry, admin):
    with reverts_with("ZeroAddress"):
        TrainingRounds.deploy(ZERO_ADDRESS, admin, GRACE, {"from": admin})
    with reverts_with("ZeroAddress"):
        TrainingRounds.deploy(registry, ZERO_ADDRESS, GRACE, {"from": admin})


def test_constructor_reverts_on_a_grace_period_above_the_maximum(registry, admin):
    with reverts_with("InvalidGracePeriod", MAX_GRACE + 1):
        TrainingRounds.deploy(registry, admin, MAX_GRACE + 1, {"from": admin})
    assert TrainingRounds.deploy(registry, admin, MAX_GRACE, {"from": admin}).gracePeriod() == MAX_GRACE
    assert TrainingRounds.deploy(registry, admin, 0, {"from": admin}).gracePeriod() == 0


def test_a_new_deployment_has_no_round_and_no_model(bare_rounds):
    assert bare_rounds.currentRoundId() == 0
    assert bare_rounds.lastFinalizedRoundId() == 0
    assert bare_rounds.genesisModelHash() == ZERO
    assert bare_rounds.latestModelHash() == ZERO
    assert set(round_dict(bare_rounds, 1).values()) == {ZERO, 0}
    assert round_dict(bare_rounds, 0)["status"] == NONE


def test_supports_training_rounds_access_control_and_erc165_interfaces(rounds):
    selectors = [
        "AGGREGATOR_ROLE()", "MAX_GRACE_PERIOD()", "setGenesisModel(bytes32)",
        "openRound(bytes32,bytes32,uint64,uint32)", "submitUpdate(uint256,bytes32,uint64)",
        "finalizeRound(uint256,bytes32,bytes32,uint32)", "expireRound(uint256)", "registry()", "gracePeriod()",
        "genesisModelHash()", "latestModelHash()", "currentRoundId()", "lastFinalizedRoundId()",
        "getRound(uint256)", "getCommitment(uint256,address)",
    ]
    assert rounds.supportsInterface(interface_id(selectors))
    assert rounds.supportsInterface("0x7965db0b")  # IAccessControl
    assert rounds.supportsInterface("0x01ffc9a7")  # IERC165
    assert not rounds.supportsInterface("0xffffffff")


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
        bare_rounds.openRound(ZERO, h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})


# --- openRound --------------------------------------------------------------------------------
def test_open_round_creates_round_1_and_emits_round_opened(rounds, aggregator, genesis):
    deadline = now() + ROUND_SECONDS
    tx = rounds.openRound(genesis, h("config"), deadline, 3, {"from": aggregator})
    assert tx.return_value == 1
    assert_event(tx, "RoundOpened", roundId=1, baseModelHash=genesis, configHash=h("config"), deadline=deadline,
                 minUpdates=3)
    assert rounds.currentRoundId() == 1
    assert rounds.lastFinalizedRoundId() == 0
    assert round_dict(rounds, 1) == dict(
        baseModelHash=genesis, configHash=h("config"), globalModelHash=ZERO, reportHash=ZERO, deadline=deadline,
        openedAt=tx.block_number, closedAt=0, minUpdates=3, commitCount=0, acceptedCount=0, status=OPEN,
    )


def test_open_round_reverts_for_an_account_without_aggregator_role(rounds, admin, outsider, nodes):
    for account in (admin, outsider, nodes[0]):
        with reverts_with(*unauthorized(account, "AGGREGATOR_ROLE")):
            rounds.openRound(*open_args(rounds), {"from": account})


def test_open_round_reverts_on_zero_min_updates(rounds, aggregator):
    with reverts_with("InvalidMinUpdates", 0):
        rounds.openRound(*open_args(rounds, min_updates=0), {"from": aggregator})


def test_open_round_reverts_on_a_deadline_that_is_not_in_the_future(rounds, aggregator, genesis):
    t = now() + 10
    next_block_at(t)
    with reverts_with("InvalidDeadline", t):
        rounds.openRound(genesis, h("config"), t, 1, {"from": aggregator})
    with reverts_with("InvalidDeadline", 1):
        rounds.openRound(genesis, h("config"), 1, 1, {"from": aggregator})
    next_block_at(now() + 10)
    tx = rounds.openRound(genesis, h("config"), now() + 11, 1, {"from": aggregator})  # one second ahead
    assert tx.return_value == 1


def test_open_round_reverts_on_a_deadline_beyond_40_bits(rounds, aggregator, genesis):
    with reverts_with("InvalidDeadline", UINT40_MAX + 1):
        rounds.openRound(genesis, h("config"), UINT40_MAX + 1, 1, {"from": aggregator})
    with reverts_with("InvalidDeadline", UINT64_MAX):
        rounds.openRound(genesis, h("config"), UINT64_MAX, 1, {"from": aggregator})
    tx = rounds.openRound(genesis, h("config"), UINT40_MAX, 1, {"from": aggregator})
    assert round_dict(rounds, tx.return_value)["deadline"] == UINT40_MAX


def test_open_round_reverts_on_a_zero_config_hash(rounds, aggregator, genesis):
    with reverts_with("ZeroHash"):
        rounds.openRound(genesis, ZERO, now() + ROUND_SECONDS, 1, {"from": aggregator})


def test_open_round_reverts_when_the_base_is_not_the_latest_model(rounds, aggregator, genesis):
    with reverts_with("BaseModelMismatch", genesis, h("stale")):
        rounds.openRound(h("stale"), h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})


def test_open_round_reverts_while_the_current_round_is_open(rounds, fed, aggregator):
    rid, _, deadline = fed.open()
    with reverts_with("RoundStillOpen", rid):
        rounds.openRound(*open_args(rounds), {"from": aggregator})
    # Past the deadline but within the grace period, the aggregator may still finalize.
    next_block_at(deadline + GRACE)
    with reverts_with("RoundStillOpen", rid):
        rounds.openRound(rounds.latestModelHash(), h("config"), deadline + GRACE + ROUND_SECONDS, 1,
                         {"from": aggregator})


def test_open_round_expires_an_expirable_current_round_first(rounds, fed, aggregator, nodes, genesis):
    rid, _, deadline = fed.open()
    fed.submit(rid, nodes[0])
    next_block_at(deadline + GRACE + 1)
    tx = rounds.openRound(genesis, h("config", 2), deadline + GRACE + ROUND_SECONDS, 1, {"from": aggregator})
    assert tx.return_value == rid + 1
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=aggregator)
    assert_event(tx, "RoundOpened", roundId=rid + 1, baseModelHash=genesis, configHash=h("config", 2),
                 deadline=deadline + GRACE + ROUND_SECONDS, minUpdates=1)
    previous = round_dict(rounds, rid)
    assert (previous["status"], previous["closedAt"], previous["commitCount"]) == (EXPIRED, tx.block_number, 1)
    assert round_dict(rounds, rid + 1)["status"] == OPEN


def test_open_round_after_a_finalized_round_starts_from_its_model(rounds, fed, aggregator):
    r1 = fed.full_round()
    assert rounds.latestModelHash() == h("model", r1)
    with reverts_with("BaseModelMismatch", h("model", r1), rounds.genesisModelHash()):
        rounds.openRound(rounds.genesisModelHash(), h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})
    r2, tx, _ = fed.open()
    assert r2 == r1 + 1
    assert_event(tx, "RoundOpened", roundId=r2, baseModelHash=h("model", r1), configHash=h("config", fed._n),
                 deadline=round_dict(rounds, r2)["deadline"], minUpdates=1)
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


def test_round_ids_count_up_from_one(rounds, fed, outsider):
    ids = []
    for i in range(4):
        if i % 2:
            ids.append(fed.full_round(fed.nodes[:1]))
        else:
            rid, _, _ = fed.open()
            fed.expire(rid, outsider)
            ids.append(rid)
    assert ids == [1, 2, 3, 4]
    assert rounds.currentRoundId() == 4
    assert rounds.lastFinalizedRoundId() == 4


# --- submitUpdate -----------------------------------------------------------------------------
def test_submit_update_records_the_commitment_and_emits_update_submitted(rounds, fed, nodes):
    rid, _, _ = fed.open()
    tx = rounds.submitUpdate(rid, h("update"), 1234, {"from": nodes[0]})
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=nodes[0], updateHash=h("update"), numSamples=1234)
    assert commitment(rounds, rid, nodes[0]) == (h("update"), 1234)
    assert round_dict(rounds, rid)["commitCount"] == 1
    rounds.submitUpdate(rid, h("update", 1), 1, {"from": nodes[1]})
    assert round_dict(rounds, rid)["commitCount"] == 2
    assert commitment(rounds, rid, nodes[1]) == (h("update", 1), 1)


def test_get_commitment_of_a_node_that_did_not_commit_is_zero(rounds, fed, nodes, outsider):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
    assert commitment(rounds, rid, nodes[1]) == (ZERO, 0)
    assert commitment(rounds, rid, outsider) == (ZERO, 0)
    assert commitment(rounds, 0, nodes[0]) == (ZERO, 0)
    assert commitment(rounds, rid + 1, nodes[0]) == (ZERO, 0)


def test_submit_reverts_for_an_account_that_is_not_a_node(rounds, fed, outsider, aggregator):
    rid, _, _ = fed.open()
    for account in (outsider, aggregator):
        with reverts_with("NotActiveNode", account):
            rounds.submitUpdate(rid, h("update"), 10, {"from": account})


def test_submit_reverts_for_a_removed_node(rounds, registry, fed, admin, nodes):
    rid, _, _ = fed.open()
    registry.removeNode(nodes[0], {"from": admin})
    with reverts_with("NotActiveNode", nodes[0]):
        rounds.submitUpdate(rid, h("update"), 10, {"from": nodes[0]})


def test_commitments_survive_the_removal_of_their_node(rounds, registry, fed, admin, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0], 77)
    registry.removeNode(nodes[0], {"from": admin})
    fed.finalize(rid)
    assert commitment(rounds, rid, nodes[0]) == (h(f"update/{rid}", 0), 77)
    assert round_dict(rounds, rid)["acceptedCount"] == 1


def test_a_node_admitted_during_a_round_may_commit_to_it(rounds, registry, fed, admin, outsider):
    rid, _, _ = fed.open()
    registry.admitNode(outsider, b"", ZERO, {"from": admin})
    tx = rounds.submitUpdate(rid, h("late"), 5, {"from": outsider})
    assert_event(tx, "UpdateSubmitted", roundId=rid, node=outsider, updateHash=h("late"), numSamples=5)


def test_submit_reverts_when_the_node_already_committed_in_the_round(rounds, fed, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0], 10)
    with reverts_with("AlreadySubmitted", rid, nodes[0]):
        rounds.submitUpdate(rid, h("second try"), 11, {"from": nodes[0]})
    assert commitment(rounds, rid, nodes[0]) == (h(f"update/{rid}", 0), 10)
    assert round_dict(rounds, rid)["commitCount"] == 1


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


def test_commitments_of_every_past_round_stay_readable(rounds, fed, nodes):
    # Sample counts are packed four rounds per slot: check the lanes do not bleed into each other,
    # across slot boundaries (rounds 4/5 and 8/9), with extreme values, and with gaps.
    samples = {1: UINT64_MAX, 2: 1, 3: UINT64_MAX, 4: 2**63, 5: 5, 6: UINT64_MAX, 8: 8, 9: 2**32 + 1}
    for rid in range(1, 10):
        opened, _, _ = fed.open()
        assert opened == rid
        if rid in samples:
            fed.submit(rid, nodes[0], samples[rid])
        fed.submit(rid, nodes[1], rid)
        fed.finalize(rid)
    for rid in range(1, 10):
        expected = (h(f"update/{rid}", 0), samples[rid]) if rid in samples else (ZERO, 0)
        assert commitment(rounds, rid, nodes[0]) == expected
        assert commitment(rounds, rid, nodes[1]) == (h(f"update/{rid}", 1), rid)


# --- finalizeRound ----------------------------------------------------------------------------
def test_finalize_round_records_the_result_and_emits_round_finalized(rounds, fed, aggregator, nodes):
    rid, opened, deadline = fed.open(min_updates=2)
    for node in nodes[:3]:
        fed.submit(rid, node)
    # Before the deadline: an early finish once enough nodes committed.
    tx = rounds.finalizeRound(rid, h("model"), h("report"), 2, {"from": aggregator})
    assert_event(tx, "RoundFinalized", roundId=rid, globalModelHash=h("model"), reportHash=h("report"), acceptedCount=2)
    assert round_dict(rounds, rid) == dict(
        baseModelHash=rounds.genesisModelHash(), configHash=h("config", fed._n), globalModelHash=h("model"),
        reportHash=h("report"), deadline=deadline, openedAt=opened.block_number, closedAt=tx.block_number,
        minUpdates=2, commitCount=3, acceptedCount=2, status=FINALIZED,
    )
    assert rounds.latestModelHash() == h("model")
    assert rounds.lastFinalizedRoundId() == rid


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
    fed.submit(rid, nodes[0])
    next_block_at(deadline + GRACE + 1)
    tx = rounds.expireRound(rid, {"from": outsider})
    assert_event(tx, "RoundExpired", roundId=rid, expiredBy=outsider)
    assert round_dict(rounds, rid) == dict(
        baseModelHash=genesis, configHash=h("config", fed._n), globalModelHash=ZERO, reportHash=ZERO,
        deadline=deadline, openedAt=opened.block_number, closedAt=tx.block_number, minUpdates=2, commitCount=1,
        acceptedCount=0, status=EXPIRED,
    )
    assert rounds.latestModelHash() == genesis
    assert rounds.lastFinalizedRoundId() == 0
    assert commitment(rounds, rid, nodes[0]) == (h(f"update/{rid}", 0), 100)


def test_expire_reverts_for_an_already_expired_round(rounds, fed, outsider):
    rid, _, _ = fed.open()
    fed.expire(rid, outsider)
    with reverts_with("RoundNotOpen", rid):
        rounds.expireRound(rid, {"from": outsider})


def test_expire_reverts_for_a_finalized_round(rounds, fed, nodes, outsider):
    rid = fed.full_round(nodes[:1])
    chain.sleep(ROUND_SECONDS + GRACE + 1)
    with reverts_with("RoundNotOpen", rid):
        rounds.expireRound(rid, {"from": outsider})


def test_expire_reverts_for_a_round_that_was_never_opened(rounds, outsider):
    with reverts_with("UnknownRound", 7):
        rounds.expireRound(7, {"from": outsider})


def test_a_zero_grace_period_allows_expiry_one_second_after_the_deadline(registry, admin, aggregator, nodes, outsider):
    contract = TrainingRounds.deploy(registry, admin, 0, {"from": admin})
    contract.grantRole(role("AGGREGATOR_ROLE"), aggregator, {"from": admin})
    contract.setGenesisModel(h("g"), {"from": admin})
    deadline = now() + 100
    contract.openRound(h("g"), h("config"), deadline, 1, {"from": aggregator})
    next_block_at(deadline)
    with reverts_with("ExpiryNotReached", 1, deadline):
        contract.expireRound(1, {"from": outsider})
    next_block_at(deadline + 1)
    assert event_count(contract.expireRound(1, {"from": outsider}), "RoundExpired") == 1


# --- roles ------------------------------------------------------------------------------------
def test_a_revoked_aggregator_can_no_longer_open_or_finalize(rounds, fed, admin, aggregator, nodes):
    rid, _, _ = fed.open()
    fed.submit(rid, nodes[0])
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
# SafeCast's error guards `uint40(block.number)`: unreachable before block 2^40 (~1.1e12).
UNREACHABLE = {"SafeCastOverflowedUintDowncast"}


def test_every_custom_error_of_training_rounds_is_asserted_by_a_test():
    source = Path(__file__).read_text()
    asserted = set(re.findall(r'reverts_with\(\s*"(\w+)"', source))
    if "*unauthorized(" in source:
        asserted.add("AccessControlUnauthorizedAccount")
    declared = {item["name"] for item in TrainingRounds.abi if item["type"] == "error"}
    assert declared - asserted - UNREACHABLE == set()


def test_every_event_of_training_rounds_is_asserted_by_a_test():
    source = Path(__file__).read_text()
    asserted = set(re.findall(r'assert_event\(\s*\w+,\s*"(\w+)"', source))
    declared = {item["name"] for item in TrainingRounds.abi if item["type"] == "event"}
    # OpenZeppelin's RoleAdminChanged is only emitted by _setRoleAdmin, which TrainingRounds never calls.
    assert declared - asserted == {"RoleAdminChanged"}
