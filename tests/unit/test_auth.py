"""EIP-712 upload signatures: shape of the typed data, round trip, replay protection, bad input."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from fedchain.auth import (
    recover_blob_reader, recover_commitment_signer, recover_receipt_signer, recover_upload_signer, sign_blob_read,
    sign_commitment, sign_receipt, sign_upload, upload_typed_data,
)
from fedchain.chain.accounts import dev_account
from fedchain.errors import AuthError

CHAIN = 31337
CONTRACT = to_checksum_address("0x" + "52" * 20)
OTHER_CONTRACT = to_checksum_address("0x" + "53" * 20)
BLOB = "0x" + "ab" * 32


@pytest.fixture
def node():
    return Account.from_key(b"\x11" * 32)


def test_typed_data_spells_out_domain_and_upload_type():
    data = upload_typed_data(CHAIN, CONTRACT.lower(), 3, BLOB.upper().replace("0X", "0x"))
    assert data["primaryType"] == "Upload"
    assert data["domain"] == {"name": "fedchain", "version": "2", "chainId": CHAIN, "verifyingContract": CONTRACT}
    assert data["types"]["Upload"] == [{"name": "round", "type": "uint256"}, {"name": "blobHash", "type": "bytes32"}]
    assert [f["name"] for f in data["types"]["EIP712Domain"]] == ["name", "version", "chainId", "verifyingContract"]
    assert data["message"] == {"round": 3, "blobHash": BLOB}


def test_signature_recovers_to_the_signer(node):
    sig = sign_upload(node, CHAIN, CONTRACT, 7, BLOB)
    assert sig.startswith("0x") and len(sig) == 2 + 130
    assert recover_upload_signer(sig, CHAIN, CONTRACT, 7, BLOB) == node.address
    # hash and address spelling do not matter
    assert recover_upload_signer(sig[2:], CHAIN, CONTRACT.lower(), 7, BLOB[2:].upper()) == node.address


def test_digest_matches_an_independent_eip712_computation(node):
    """What a Solidity verifier would compute: keccak(0x1901 || domainSeparator || structHash)."""
    domain_type = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    domain_sep = keccak(
        domain_type
        + keccak(text="fedchain")
        + keccak(text="2")
        + CHAIN.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(CONTRACT[2:])
    )
    struct = keccak(keccak(text="Upload(uint256 round,bytes32 blobHash)") + (5).to_bytes(32, "big") + bytes.fromhex(BLOB[2:]))
    digest = keccak(b"\x19\x01" + domain_sep + struct)
    raw = bytes.fromhex(sign_upload(node, CHAIN, CONTRACT, 5, BLOB)[2:])
    sig = keys.Signature(raw[:64] + bytes([raw[64] - 27]))
    assert sig.recover_public_key_from_msg_hash(digest).to_checksum_address() == node.address


@pytest.mark.parametrize(
    "other",
    [
        {"round_id": 8},
        {"chain_id": 1},
        {"contract": OTHER_CONTRACT},
        {"blob_hash": "0x" + "ac" * 32},
    ],
    ids=["another_round", "another_chain", "another_contract", "another_blob"],
)
def test_signature_cannot_be_replayed(node, other):
    args = {"chain_id": CHAIN, "contract": CONTRACT, "round_id": 7, "blob_hash": BLOB}
    sig = sign_upload(node, **args)
    assert recover_upload_signer(sig, **{**args, **other}) != node.address


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "0x", "0xzz" + "00" * 64, "0x" + "00" * 64, "0x" + "11" * 66, "0x" + "11" * 64 + "63"],
    ids=["empty", "blank", "prefix_only", "not_hex", "64_bytes", "66_bytes", "invalid_v"],
)
def test_malformed_signature_raises_auth_error(bad):
    with pytest.raises(AuthError) as exc:
        recover_upload_signer(bad, CHAIN, CONTRACT, 1, BLOB)
    assert exc.value.http_status == 401


def test_malformed_blob_hash_or_contract_raises_auth_error(node):
    with pytest.raises(AuthError):
        upload_typed_data(CHAIN, CONTRACT, 1, "0x1234")
    with pytest.raises(AuthError):
        upload_typed_data(CHAIN, "not-an-address", 1, BLOB)
    with pytest.raises(AuthError):
        sign_upload(node, CHAIN, CONTRACT, -1, BLOB)


def test_commitment_signature_recovers_its_node_in_compact_form():
    node = dev_account(2)
    sig = sign_commitment(node, CHAIN, CONTRACT, 7, BLOB, 1234)
    assert len(bytes.fromhex(sig[2:])) == 64
    assert recover_commitment_signer(sig, CHAIN, CONTRACT, 7, BLOB, 1234) == node.address


def test_commitment_signature_for_other_samples_recovers_someone_else():
    node = dev_account(2)
    sig = sign_commitment(node, CHAIN, CONTRACT, 7, BLOB, 1234)
    assert recover_commitment_signer(sig, CHAIN, CONTRACT, 7, BLOB, 1235) != node.address
    assert recover_commitment_signer(sig, CHAIN, CONTRACT, 8, BLOB, 1234) != node.address


def test_commitment_digest_matches_an_independent_eip712_computation():
    node = dev_account(3)
    domain_sep = keccak(
        keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        + keccak(text="fedchain") + keccak(text="2") + CHAIN.to_bytes(32, "big") + bytes.fromhex(CONTRACT[2:]).rjust(32, b"\0")
    )
    struct = keccak(keccak(text="Commitment(uint256 roundId,bytes32 updateHash,uint64 numSamples)")
                    + (9).to_bytes(32, "big") + bytes.fromhex(BLOB[2:]) + (77).to_bytes(32, "big"))
    digest = keccak(b"\x19\x01" + domain_sep + struct)
    raw = bytes.fromhex(sign_commitment(node, CHAIN, CONTRACT, 9, BLOB, 77)[2:])
    vs = int.from_bytes(raw[32:], "big")
    sig = keys.Signature(raw[:32] + (vs & ((1 << 255) - 1)).to_bytes(32, "big") + bytes([vs >> 255]))
    assert sig.recover_public_key_from_msg_hash(digest).to_checksum_address() == node.address


def test_receipt_binds_round_node_and_hash():
    aggregator, node = dev_account(0), dev_account(1)
    sig = sign_receipt(aggregator, CHAIN, CONTRACT, 4, node.address, BLOB)
    assert recover_receipt_signer(sig, CHAIN, CONTRACT, 4, node.address, BLOB) == aggregator.address
    assert recover_receipt_signer(sig, CHAIN, CONTRACT, 4, dev_account(2).address, BLOB) != aggregator.address


def test_blob_read_permission_recovers_reader_and_expiry_is_signed():
    reader = dev_account(4)
    sig = sign_blob_read(reader, CHAIN, CONTRACT, BLOB, 1_900_000_000)
    assert recover_blob_reader(sig, CHAIN, CONTRACT, BLOB, 1_900_000_000) == reader.address
    assert recover_blob_reader(sig, CHAIN, CONTRACT, BLOB, 1_900_000_001) != reader.address


def test_the_direct_typed_digest_is_what_eth_account_signs_for_every_message():
    from eth_account.messages import _hash_eip191_message

    from fedchain.auth import MESSAGES, _signable_typed, typed_digest

    contract, h = "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x" + "ab" * 32
    values = {"uint256": 7, "uint64": 2**64 - 1, "bytes32": h, "address": "0x" + "12" * 20}
    for primary, fields in MESSAGES.items():
        msg = {f["name"]: values[f["type"]] for f in fields}
        for chain_id in (1, 31337):
            assert typed_digest(chain_id, contract, primary, msg) == _hash_eip191_message(
                _signable_typed(chain_id, contract, primary, msg)), primary
