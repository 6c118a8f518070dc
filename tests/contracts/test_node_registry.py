"""The node registry (NodeRegistry, inherited by the one TrainingRounds contract): admission,
removal, self-registration, key rotation, the rounds a membership or key applies from, roles."""

import json
import re
from pathlib import Path

import pytest
from brownie import TrainingRounds, web3
from conftest import (
    GRACE,
    ZERO,
    ZERO_ADDRESS,
    assert_event,
    error_data,
    h,
    interface_id,
    reverts_with,
    role,
    round_dict,
    unauthorized,
)
KEY = bytes(range(1, 33))  # 32 bytes, e.g. an X25519 public key
LONG_KEY = bytes(range(200))  # several storage slots


def registry_abi():
    """The ABI of INodeRegistry (NodeRegistry is abstract: brownie exposes no container for it)."""
    root = Path(__file__).resolve().parents[2]
    return json.loads((root / "build" / "contracts" / "INodeRegistry.json").read_text())["abi"]


def node_tuple(registry, node):
    """(active, joinedAt, metadataHash, publicKey) of getNode."""
    active, joined_at, _joined_round, _key_round, metadata, key = registry.getNode(node)
    return bool(active), int(joined_at), str(metadata).lower(), bytes(key)


def node_rounds(registry, node):
    """(joinedRound, keyRound) of getNode."""
    record = registry.getNode(node)
    return int(record[2]), int(record[3])


def block_time(tx) -> int:
    return int(web3.eth.get_block(tx.block_number)["timestamp"])


# --- deployment -------------------------------------------------------------------------------
def test_constructor_grants_admin_and_registrar_roles_to_admin(registry, admin, outsider):
    assert registry.hasRole(role("DEFAULT_ADMIN_ROLE"), admin)
    assert registry.hasRole(role("REGISTRAR_ROLE"), admin)
    assert registry.REGISTRAR_ROLE() == "0x" + role("REGISTRAR_ROLE").hex()
    assert not registry.hasRole(role("REGISTRAR_ROLE"), outsider)


def test_constructor_reverts_on_zero_admin(admin):
    with reverts_with("ZeroAddress"):
        TrainingRounds.deploy(ZERO_ADDRESS, GRACE, {"from": admin})


def test_registry_starts_empty_with_registration_closed(registry, outsider):
    assert registry.nodeCount() == 0
    assert registry.openRegistration() is False
    assert registry.isActiveNode(outsider) is False


def test_supports_the_registry_interface_access_control_and_erc165(registry):
    selectors = [
        "REGISTRAR_ROLE()", "admitNode(address,bytes,bytes32)", "removeNode(address)",
        "setOpenRegistration(bool)", "openRegistration()", "register(bytes,bytes32)",
        "updateNode(bytes,bytes32)", "isActiveNode(address)", "nodeCount()", "getNode(address)",
    ]
    assert registry.supportsInterface(interface_id(selectors))
    assert registry.supportsInterface("0x7965db0b")  # IAccessControl
    assert registry.supportsInterface("0x01ffc9a7")  # IERC165
    assert not registry.supportsInterface("0xffffffff")


# --- admitNode --------------------------------------------------------------------------------
def test_admit_node_records_the_node_and_emits_node_admitted(registry, admin, nodes):
    tx = registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    assert_event(tx, "NodeAdmitted", node=nodes[0], admittedBy=admin, metadataHash=h("meta"), publicKey=KEY)
    assert node_tuple(registry, nodes[0]) == (True, block_time(tx), h("meta"), KEY)
    assert registry.isActiveNode(nodes[0])
    assert registry.nodeCount() == 1


def test_admit_node_accepts_an_empty_key_and_zero_metadata(registry, admin, nodes):
    tx = registry.admitNode(nodes[0], b"", ZERO, {"from": admin})
    assert_event(tx, "NodeAdmitted", node=nodes[0], admittedBy=admin, metadataHash=ZERO, publicKey=b"")
    assert node_tuple(registry, nodes[0]) == (True, block_time(tx), ZERO, b"")


def test_admit_node_stores_a_multi_slot_public_key(registry, admin, nodes):
    registry.admitNode(nodes[0], LONG_KEY, h("meta"), {"from": admin})
    assert node_tuple(registry, nodes[0])[3] == LONG_KEY


def test_admit_reverts_for_an_account_without_registrar_role(registry, outsider, nodes):
    with reverts_with(*unauthorized(outsider, "REGISTRAR_ROLE")):
        registry.admitNode(nodes[0], KEY, h("meta"), {"from": outsider})


def test_admit_reverts_for_the_zero_address(registry, admin):
    with reverts_with("ZeroAddress"):
        registry.admitNode(ZERO_ADDRESS, KEY, h("meta"), {"from": admin})


def test_admit_reverts_when_the_node_is_already_active(registry, admin, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    with reverts_with("NodeAlreadyActive", nodes[0]):
        registry.admitNode(nodes[0], b"", ZERO, {"from": admin})


def test_a_granted_registrar_can_admit_and_remove(registry, admin, outsider, nodes):
    registry.grantRole(role("REGISTRAR_ROLE"), outsider, {"from": admin})
    tx = registry.admitNode(nodes[0], KEY, h("meta"), {"from": outsider})
    assert_event(tx, "NodeAdmitted", node=nodes[0], admittedBy=outsider, metadataHash=h("meta"), publicKey=KEY)
    tx = registry.removeNode(nodes[0], {"from": outsider})
    assert_event(tx, "NodeRemoved", node=nodes[0], removedBy=outsider)


def test_admin_without_registrar_role_cannot_admit(registry, admin, nodes):
    registry.renounceRole(role("REGISTRAR_ROLE"), admin, {"from": admin})
    with reverts_with(*unauthorized(admin, "REGISTRAR_ROLE")):
        registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})


def test_role_changes_emit_access_control_events(registry, admin, outsider):
    registrar = role("REGISTRAR_ROLE")
    tx = registry.grantRole(registrar, outsider, {"from": admin})
    assert_event(tx, "RoleGranted", role=registrar, account=outsider, sender=admin)
    tx = registry.revokeRole(registrar, outsider, {"from": admin})
    assert_event(tx, "RoleRevoked", role=registrar, account=outsider, sender=admin)
    # OpenZeppelin's RoleAdminChanged is only emitted by _setRoleAdmin, which NodeRegistry never calls.
    assert registry.getRoleAdmin(registrar) == "0x" + role("DEFAULT_ADMIN_ROLE").hex()


def test_renounce_role_reverts_on_bad_confirmation(registry, admin, outsider):
    with reverts_with("AccessControlBadConfirmation"):
        registry.renounceRole(role("REGISTRAR_ROLE"), outsider, {"from": admin})


# --- removeNode -------------------------------------------------------------------------------
def test_remove_node_deactivates_keeps_the_record_and_emits_node_removed(registry, admin, nodes):
    admitted = registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    registry.admitNode(nodes[1], KEY, h("meta", 1), {"from": admin})
    tx = registry.removeNode(nodes[0], {"from": admin})
    assert_event(tx, "NodeRemoved", node=nodes[0], removedBy=admin)
    assert node_tuple(registry, nodes[0]) == (False, block_time(admitted), h("meta"), KEY)
    assert not registry.isActiveNode(nodes[0])
    assert registry.isActiveNode(nodes[1])
    assert registry.nodeCount() == 1


def test_remove_reverts_for_an_account_without_registrar_role(registry, admin, outsider, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    with reverts_with(*unauthorized(outsider, "REGISTRAR_ROLE")):
        registry.removeNode(nodes[0], {"from": outsider})
    with reverts_with(*unauthorized(nodes[0], "REGISTRAR_ROLE")):
        registry.removeNode(nodes[0], {"from": nodes[0]})


def test_remove_reverts_for_a_never_admitted_account(registry, admin, outsider):
    with reverts_with("NodeNotActive", outsider):
        registry.removeNode(outsider, {"from": admin})


def test_remove_reverts_for_an_already_removed_node(registry, admin, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    registry.removeNode(nodes[0], {"from": admin})
    with reverts_with("NodeNotActive", nodes[0]):
        registry.removeNode(nodes[0], {"from": admin})


def test_readmitting_a_removed_node_replaces_its_record(registry, admin, nodes):
    registry.admitNode(nodes[0], LONG_KEY, h("meta"), {"from": admin})
    registry.removeNode(nodes[0], {"from": admin})
    tx = registry.admitNode(nodes[0], KEY, h("meta", 2), {"from": admin})
    assert_event(tx, "NodeAdmitted", node=nodes[0], admittedBy=admin, metadataHash=h("meta", 2), publicKey=KEY)
    assert node_tuple(registry, nodes[0]) == (True, block_time(tx), h("meta", 2), KEY)
    assert registry.nodeCount() == 1


# --- open registration --------------------------------------------------------------------
def test_set_open_registration_toggles_the_mode_and_emits_registration_mode_changed(registry, admin):
    tx = registry.setOpenRegistration(True, {"from": admin})
    assert_event(tx, "RegistrationModeChanged", open=True)
    assert registry.openRegistration() is True
    tx = registry.setOpenRegistration(False, {"from": admin})
    assert_event(tx, "RegistrationModeChanged", open=False)
    assert registry.openRegistration() is False


def test_set_open_registration_reverts_for_a_non_admin(registry, admin, outsider):
    with reverts_with(*unauthorized(outsider, "DEFAULT_ADMIN_ROLE")):
        registry.setOpenRegistration(True, {"from": outsider})
    # REGISTRAR_ROLE alone is not enough: the mode is an admin decision.
    registry.grantRole(role("REGISTRAR_ROLE"), outsider, {"from": admin})
    with reverts_with(*unauthorized(outsider, "DEFAULT_ADMIN_ROLE")):
        registry.setOpenRegistration(True, {"from": outsider})


def test_register_reverts_while_registration_is_closed(registry, outsider):
    with reverts_with("RegistrationClosed"):
        registry.register(KEY, h("meta"), {"from": outsider})


def test_register_admits_the_caller_while_registration_is_open(registry, admin, outsider):
    registry.setOpenRegistration(True, {"from": admin})
    tx = registry.register(KEY, h("self"), {"from": outsider})
    assert_event(tx, "NodeAdmitted", node=outsider, admittedBy=outsider, metadataHash=h("self"), publicKey=KEY)
    assert node_tuple(registry, outsider) == (True, block_time(tx), h("self"), KEY)
    assert registry.nodeCount() == 1


def test_register_reverts_when_the_caller_is_already_active(registry, admin, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    registry.setOpenRegistration(True, {"from": admin})
    with reverts_with("NodeAlreadyActive", nodes[0]):
        registry.register(KEY, h("meta"), {"from": nodes[0]})


def test_register_reverts_again_once_registration_is_closed(registry, admin, outsider):
    registry.setOpenRegistration(True, {"from": admin})
    registry.setOpenRegistration(False, {"from": admin})
    with reverts_with("RegistrationClosed"):
        registry.register(KEY, h("meta"), {"from": outsider})


def test_a_removed_node_can_register_again_while_registration_is_open(registry, admin, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    registry.removeNode(nodes[0], {"from": admin})
    registry.setOpenRegistration(True, {"from": admin})
    registry.register(b"\x07" * 33, h("back"), {"from": nodes[0]})
    assert registry.isActiveNode(nodes[0])
    assert registry.nodeCount() == 1


# --- updateNode -------------------------------------------------------------------------------
def test_update_node_rotates_the_key_and_emits_node_updated(registry, admin, nodes):
    admitted = registry.admitNode(nodes[0], LONG_KEY, h("meta"), {"from": admin})
    tx = registry.updateNode(KEY, h("meta", 9), {"from": nodes[0]})
    assert_event(tx, "NodeUpdated", node=nodes[0], metadataHash=h("meta", 9), publicKey=KEY)
    # A shorter key leaves nothing of the longer one behind; admission time is unchanged.
    assert node_tuple(registry, nodes[0]) == (True, block_time(admitted), h("meta", 9), KEY)
    assert registry.nodeCount() == 1


def test_update_reverts_for_a_never_admitted_account(registry, outsider):
    with reverts_with("NodeNotActive", outsider):
        registry.updateNode(KEY, h("meta"), {"from": outsider})


def test_update_reverts_for_a_removed_node(registry, admin, nodes):
    registry.admitNode(nodes[0], KEY, h("meta"), {"from": admin})
    registry.removeNode(nodes[0], {"from": admin})
    with reverts_with("NodeNotActive", nodes[0]):
        registry.updateNode(KEY, h("meta"), {"from": nodes[0]})


# --- views ------------------------------------------------------------------------------------
def test_get_node_of_a_never_admitted_account_is_empty(registry, outsider):
    assert node_tuple(registry, outsider) == (False, 0, ZERO, b"")


def test_node_count_follows_admissions_and_removals(registry, admin, nodes):
    for i, node in enumerate(nodes):
        registry.admitNode(node, b"", h("meta", i), {"from": admin})
        assert registry.nodeCount() == i + 1
    for i, node in enumerate(nodes[:3]):
        registry.removeNode(node, {"from": admin})
        assert registry.nodeCount() == len(nodes) - i - 1
    assert [registry.isActiveNode(n) for n in nodes] == [False, False, False, True, True]


# --- the rounds a membership and a key apply from (v2) ----------------------------------------
def test_admission_records_the_current_round_as_joined_round_and_key_round(rounds, fed, admin, outsider):
    rounds.admitNode(outsider, KEY, h("meta"), {"from": admin})
    assert node_rounds(rounds, outsider) == (0, 0)
    rid, _, _ = fed.open()
    rounds.removeNode(outsider, {"from": admin})
    tx = rounds.admitNode(outsider, KEY, h("meta", 2), {"from": admin})
    assert node_rounds(rounds, outsider) == (rid, rid)
    assert node_tuple(rounds, outsider) == (True, block_time(tx), h("meta", 2), KEY)


def test_key_rotation_sets_key_round_to_the_current_round(rounds, fed, nodes):
    assert node_rounds(rounds, nodes[0]) == (0, 0)
    rid = fed.full_round()
    rid2, _, _ = fed.open()
    assert rid2 == rid + 1
    tx = rounds.updateNode(KEY, h("rotated"), {"from": nodes[0]})
    assert_event(tx, "NodeUpdated", node=nodes[0], metadataHash=h("rotated"), publicKey=KEY)
    # The key applies from round rid2 + 1; membership is unchanged.
    assert node_rounds(rounds, nodes[0]) == (0, rid2)
    assert node_rounds(rounds, nodes[1]) == (0, 0)


def test_registry_operations_leave_the_rounds_alone(rounds, fed, admin, nodes, outsider):
    rid, _, _ = fed.open()
    before = round_dict(rounds, rid)
    rounds.admitNode(outsider, KEY, h("meta"), {"from": admin})
    rounds.removeNode(nodes[4], {"from": admin})
    rounds.updateNode(KEY, h("m"), {"from": nodes[0]})
    assert round_dict(rounds, rid) == before  # eligibleCount is the snapshot taken at opening
    assert rounds.nodeCount() == len(nodes)


# --- the test suite itself ------------------------------------------------------------------
def test_every_custom_error_of_the_registry_is_asserted_by_a_test():
    source = Path(__file__).read_text()
    asserted = set(re.findall(r'reverts_with\(\s*"(\w+)"', source))
    if "*unauthorized(" in source:
        asserted.add("AccessControlUnauthorizedAccount")
    declared = {item["name"] for item in registry_abi() if item["type"] == "error"}
    if "*unauthorized(" in source:
        declared.add("AccessControlUnauthorizedAccount")
    assert declared and declared - asserted == set()


def test_every_event_of_the_registry_is_asserted_by_a_test():
    source = Path(__file__).read_text()
    asserted = set(re.findall(r'assert_event\(\s*\w+,\s*"(\w+)"', source))
    declared = {item["name"] for item in registry_abi() if item["type"] == "event"}
    assert declared and declared - asserted == set()


def test_revert_helper_rejects_a_different_error(registry, admin, outsider):
    with pytest.raises(AssertionError, match="reverted with NodeNotActive"):
        with reverts_with("NodeAlreadyActive", outsider):
            registry.removeNode(outsider, {"from": admin})
    with pytest.raises(AssertionError, match="did not revert"):
        with reverts_with("RegistrationClosed"):
            registry.setOpenRegistration(True, {"from": admin})
    assert error_data("ZeroAddress") == bytes(web3.keccak(text="ZeroAddress()")[:4])
