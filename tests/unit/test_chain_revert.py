from eth_abi import encode
from eth_utils import keccak

from fedchain.chain.revert import RevertDecoder

ABI = [
    {"type": "error", "name": "DeadlinePassed",
     "inputs": [{"name": "roundId", "type": "uint256"}, {"name": "deadline", "type": "uint64"}]},
    {"type": "error", "name": "NotActiveNode", "inputs": [{"name": "node", "type": "address"}]},
    {"type": "error", "name": "ZeroHash", "inputs": []},
    {"type": "error", "name": "AccessControlUnauthorizedAccount",
     "inputs": [{"name": "account", "type": "address"}, {"name": "neededRole", "type": "bytes32"}]},
]


def _data(sig: str, types: list[str], values: list) -> str:
    return "0x" + (keccak(text=sig)[:4] + encode(types, values)).hex()


def test_decodes_custom_error_name_and_arguments():
    err = RevertDecoder([ABI]).decode(_data("DeadlinePassed(uint256,uint64)", ["uint256", "uint64"], [7, 1234]),
                                      function="submitUpdate")
    assert err.name == "DeadlinePassed"
    assert err.args_dict == {"roundId": 7, "deadline": 1234}
    assert str(err) == "submitUpdate: contract reverted with DeadlinePassed(roundId=7, deadline=1234)"


def test_decodes_address_checksummed_and_bytes32_as_hex():
    addr = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    role = b"\x01" * 32
    err = RevertDecoder([ABI]).decode(
        _data("AccessControlUnauthorizedAccount(address,bytes32)", ["address", "bytes32"], [addr, role]))
    assert err.name == "AccessControlUnauthorizedAccount"
    assert err.args_dict["account"] == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert err.args_dict["neededRole"] == "0x" + "01" * 32


def test_decodes_error_without_arguments():
    assert RevertDecoder([ABI]).decode(_data("ZeroHash()", [], [])).name == "ZeroHash"


def test_decodes_require_string_and_panic():
    dec = RevertDecoder([ABI])
    assert dec.decode(_data("Error(string)", ["string"], ["nope"])).args_dict == {"reason": "nope"}
    assert dec.decode(_data("Panic(uint256)", ["uint256"], [0x11])).args_dict == {"code": "0x11"}


def test_unknown_selector_keeps_raw_data():
    err = RevertDecoder([ABI]).decode("0xdeadbeef00")
    assert err.name == "UnknownRevert" and err.args_dict["data"] == "0xdeadbeef00"


def test_empty_revert_data_is_unknown_revert():
    assert RevertDecoder([ABI]).decode(None).name == "UnknownRevert"


def test_revert_data_is_found_in_anvils_and_hardhats_error_shapes():
    from fedchain.chain.revert import revert_data

    data = "0x4af506380000000000000000000000000000000000000000000000000000000000000063"

    class Err(Exception):
        def __init__(self, data, *args):
            super().__init__(*args)
            self.data = data

    assert revert_data(Err(data)) == data  # anvil: the hex itself
    nested = {"message": f"VM Exception: reverted with an unrecognized custom error (return data: {data})", "data": data}
    assert revert_data(Err(nested)) == data  # hardhat, eth_estimateGas / eth_call
    sent = {"code": -32603, "message": "Error: VM Exception ...", "data": {"message": "...", "txHash": "0x12", "data": data}}
    assert revert_data(Err(None, sent)) == data  # hardhat answering eth_sendRawTransaction of a reverted tx
    assert revert_data(Err(None, f"execution reverted (return data: {data})")) == data
    assert revert_data(Err(None, "nonce too low")) is None
