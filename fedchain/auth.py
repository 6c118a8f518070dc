"""EIP-712 upload signatures.

A node signs every blob it uploads to the aggregator's store with its Ethereum key. The signed
message binds the blob hash to one round of one ``TrainingRounds`` deployment on one chain:

    domain  = {"name": "fedchain", "version": "1", "chainId": <chain id>,
               "verifyingContract": <TrainingRounds address>}
    message = Upload(uint256 round, bytes32 blobHash)

so a signature cannot be replayed for another round, another chain, or another deployment. The
API recovers the signer from the ``X-Fedchain-Signature`` header and admits the upload only if the
signer is an active node in the registry.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from fedchain.errors import AuthError

#: The HTTP header that carries the signature.
SIGNATURE_HEADER = "X-Fedchain-Signature"

DOMAIN_NAME = "fedchain"
DOMAIN_VERSION = "1"

UPLOAD_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Upload": [
        {"name": "round", "type": "uint256"},
        {"name": "blobHash", "type": "bytes32"},
    ],
}


def _blob_hash_bytes(blob_hash: str) -> bytes:
    h = blob_hash.lower()
    if h.startswith("0x"):
        h = h[2:]
    if len(h) != 64:
        raise AuthError(f"blob hash {blob_hash!r} is not 32 bytes of hex")
    try:
        return bytes.fromhex(h)
    except ValueError as exc:
        raise AuthError(f"blob hash {blob_hash!r} is not hex") from exc


def upload_typed_data(chain_id: int, contract: str, round_id: int, blob_hash: str) -> dict[str, Any]:
    """The full EIP-712 typed-data document for an upload (what ``eth_signTypedData_v4`` takes)."""
    if not is_address(contract):
        raise AuthError(f"verifying contract {contract!r} is not an address")
    if round_id < 0:
        raise AuthError(f"round {round_id} is negative")
    raw = _blob_hash_bytes(blob_hash)
    return {
        "types": {k: [dict(f) for f in v] for k, v in UPLOAD_TYPES.items()},
        "primaryType": "Upload",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": int(chain_id),
            "verifyingContract": to_checksum_address(contract),
        },
        "message": {"round": int(round_id), "blobHash": "0x" + raw.hex()},
    }


def _signable(chain_id: int, contract: str, round_id: int, blob_hash: str) -> Any:
    data = upload_typed_data(chain_id, contract, round_id, blob_hash)
    # eth-account wants raw bytes for bytes32 values.
    data["message"]["blobHash"] = _blob_hash_bytes(blob_hash)
    return encode_typed_data(full_message=data)


def sign_upload(account: LocalAccount, chain_id: int, contract: str, round_id: int, blob_hash: str) -> str:
    """Sign an upload of ``blob_hash`` for ``round_id``; returns the 65-byte signature as 0x-hex."""
    signed = account.sign_message(_signable(chain_id, contract, round_id, blob_hash))
    return "0x" + bytes(signed.signature).hex()


def recover_upload_signer(signature: str, chain_id: int, contract: str, round_id: int, blob_hash: str) -> str:
    """The checksummed address that signed this upload. ``AuthError`` for a malformed signature.

    Recovery always yields *some* address; a signature made for another round, chain or contract
    recovers to an unrelated address, which the caller then finds is not an active node.
    """
    if not isinstance(signature, str) or not signature.strip():
        raise AuthError("missing upload signature", hint=f"sign the upload with EIP-712 and send it in {SIGNATURE_HEADER}")
    sig = signature.strip()
    if sig[:2].lower() == "0x":
        sig = sig[2:]
    try:
        raw = bytes.fromhex(sig)
    except ValueError as exc:
        raise AuthError("upload signature is not hex", hint="send the 65-byte signature as 0x-prefixed hex") from exc
    if len(raw) != 65:
        raise AuthError(
            f"upload signature is {len(raw)} bytes, expected 65",
            hint="send the 65-byte (r, s, v) signature as 0x-prefixed hex",
        )
    msg = _signable(chain_id, contract, round_id, blob_hash)
    try:
        return to_checksum_address(Account.recover_message(msg, signature=raw))
    except Exception as exc:  # eth_keys raises BadSignature / ValueError on an invalid v, r or s
        raise AuthError(f"upload signature is invalid ({type(exc).__name__})") from exc
