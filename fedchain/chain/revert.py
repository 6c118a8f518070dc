"""Decoding contract reverts into :class:`fedchain.errors.ContractRevert`: the one place it happens.

Custom errors are looked up by selector in the ABIs of every deployed contract (which include the
OpenZeppelin errors they inherit, e.g. ``AccessControlUnauthorizedAccount``); the standard
``Error(string)`` and ``Panic(uint256)`` are handled too.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from eth_abi import decode as abi_decode
from eth_utils import keccak

from fedchain.address import to_checksum_address
from fedchain.errors import ContractRevert

_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]


def _type_str(inp: dict[str, Any]) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        inner = ",".join(_type_str(c) for c in inp.get("components", []))
        return f"({inner}){t[5:]}"
    return t


def _normalise(value: Any, abi_type: str) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if abi_type == "address" and isinstance(value, str):
        return to_checksum_address(value)
    return value


_RETURN_DATA = re.compile(r"return data: (0x[0-9a-fA-F]*)")


def revert_data(error: Any) -> str | None:
    """The revert data of a node's error, whatever shape the node gives it: anvil puts the hex in
    ``data``; Hardhat nests it (``data: {"message", "data": "0x.."}``) and, for a transaction it
    mined and reverted, answers ``eth_sendRawTransaction`` with an error carrying it the same
    way. Takes a web3 ``ContractLogicError``/``Web3RPCError`` or the JSON-RPC error object."""
    for candidate in (getattr(error, "data", None), *(getattr(error, "args", None) or ()), error):
        found = _find_data(candidate, 0)
        if found is not None:
            return found
    m = _RETURN_DATA.search(str(error))
    return m.group(1) if m else None


def _find_data(obj: Any, depth: int) -> str | None:
    if depth > 4:
        return None
    if isinstance(obj, str):
        return obj if obj.startswith("0x") and len(obj) >= 10 and _is_hex(obj[2:]) else None
    if isinstance(obj, dict):
        for key in ("data", "error"):
            if key in obj:
                found = _find_data(obj[key], depth + 1)
                if found is not None:
                    return found
        m = _RETURN_DATA.search(str(obj.get("message", "")))
        return m.group(1) if m else None
    return None


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


class RevertDecoder:
    """Maps 4-byte selectors to custom errors declared in the given ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                inputs = item.get("inputs", [])
                sig = f"{item['name']}({','.join(_type_str(i) for i in inputs)})"
                self._errors[keccak(text=sig)[:4]] = (item["name"], inputs)

    def decode(self, data: str | bytes | None, *, function: str = "") -> ContractRevert:
        """Turn revert data into a ContractRevert; unknown data still gives a named error."""
        if isinstance(data, str):
            raw = bytes.fromhex(data[2:] if data.startswith("0x") else data)
        else:
            raw = bytes(data or b"")
        if len(raw) < 4:
            return ContractRevert("UnknownRevert", {"data": "0x" + raw.hex()}, function=function)
        selector, payload = raw[:4], raw[4:]
        try:
            if selector == _ERROR_STRING:
                (reason,) = abi_decode(["string"], payload)
                return ContractRevert("Error", {"reason": reason}, function=function)
            if selector == _PANIC:
                (code,) = abi_decode(["uint256"], payload)
                return ContractRevert("Panic", {"code": hex(code)}, function=function)
            if selector in self._errors:
                name, inputs = self._errors[selector]
                types = [_type_str(i) for i in inputs]
                values = abi_decode(types, payload) if types else ()
                args = {
                    (i.get("name") or f"arg{n}"): _normalise(v, t)
                    for n, (i, t, v) in enumerate(zip(inputs, types, values))
                }
                return ContractRevert(name, args, function=function)
        except Exception:  # malformed payload: keep the raw data, still a named error
            pass
        return ContractRevert("UnknownRevert", {"data": "0x" + raw.hex()}, function=function)
