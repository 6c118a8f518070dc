"""View calls without web3's contract machinery: the hot reads of a round (``getRound``,
``currentRoundId``, ``hasCommitted``...) are encoded and decoded here with eth_abi from the ABI,
once per function, and sent as a plain ``eth_call``.

web3's ``contract.functions.f(args).call()`` costs about 4.4 ms of client CPU here, most of it in
building the function object and its call (ABI lookup, argument normalisation, formatters); the
same call through :class:`ViewAbi` and the provider costs about 1.3 ms
(docs/benchmarks-latency.md). Nodes, the API and the round loop make such calls every round, on
machines that also train, so the difference is round latency.

Results match web3's: integers, bools, ``bytes`` for fixed bytes, checksummed addresses, tuples
for structs and lists for arrays (``tests/e2e/test_chain_views.py`` compares every view the client
uses, on anvil). A reverted or malformed answer is never decoded here: the client falls back to
web3's own call, which raises the named contract error as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from eth_abi import decode, encode
from eth_utils import keccak

from fedchain.address import to_checksum_address


def abi_type(item: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI input or output (``(uint64,bool)[]`` for a tuple array)."""
    t = str(item["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in item.get("components", [])) + ")" + t[len("tuple"):]
    return t


def _normalise(item: Mapping[str, Any], value: Any) -> Any:
    """eth_abi's value as web3 returns it: checksummed addresses; lists for arrays."""
    t = str(item["type"])
    if t.endswith("]"):
        inner = dict(item, type=t[: t.rindex("[")])
        return [_normalise(inner, v) for v in value]
    if t == "tuple":
        return tuple(_normalise(c, v) for c, v in zip(item.get("components", []), value))
    if t == "address":
        return to_checksum_address(value)
    return value


@dataclass(frozen=True)
class ViewAbi:
    """One view function: its selector, argument types and how to decode its result."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, abi: Sequence[Mapping[str, Any]], name: str, n_args: int) -> "ViewAbi":
        """The function ``name`` taking ``n_args`` arguments; KeyError if the ABI has none."""
        for item in abi:
            if item.get("type") == "function" and item.get("name") == name and len(item.get("inputs", [])) == n_args:
                inputs = tuple(abi_type(i) for i in item.get("inputs", []))
                selector = keccak(text=f"{name}({','.join(inputs)})")[:4]
                return cls(name, selector, inputs, tuple(item.get("outputs", [])))
        raise KeyError(f"no function {name} with {n_args} argument(s) in the ABI")

    def calldata(self, args: Sequence[Any]) -> str:
        return "0x" + (self.selector + encode(list(self.inputs), list(args))).hex()

    def result(self, data: bytes) -> Any:
        """The decoded return value: one value for one output, else a tuple (as web3's ``call``).
        Raises on data that does not decode (the caller falls back to web3)."""
        values = decode([abi_type(o) for o in self.outputs], data)
        out = tuple(_normalise(o, v) for o, v in zip(self.outputs, values))
        return out[0] if len(out) == 1 else out


def _as_bytes(value: Any) -> bytes:
    """A topic or data field as bytes: web3 gives HexBytes, a plain JSON-RPC answer hex strings."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    s = str(value)
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def _event_value(item: Mapping[str, Any], value: Any) -> Any:
    """A decoded event argument as web3's ``process_log`` gives it: struct arguments as a mapping
    of their components' names."""
    if str(item["type"]) == "tuple":
        return {c["name"]: _event_value(c, v) for c, v in zip(item.get("components", []), value)}
    return _normalise(item, value)


@dataclass(frozen=True)
class EventAbi:
    """One event: its topic and how to decode a log of it (static indexed arguments only, as every
    fedchain event has; ``EventAbi.of`` refuses others, and the client then keeps web3's decoder)."""

    name: str
    topic: bytes
    indexed: tuple[Mapping[str, Any], ...]
    data: tuple[Mapping[str, Any], ...]
    order: tuple[str, ...]

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> "EventAbi":
        inputs = list(item.get("inputs", []))
        indexed = tuple(i for i in inputs if i.get("indexed"))
        for i in indexed:
            t = abi_type(i)
            if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                raise ValueError(f"event {item['name']}: indexed {t} is stored as a hash")
        signature = f"{item['name']}({','.join(abi_type(i) for i in inputs)})"
        return cls(str(item["name"]), keccak(text=signature), indexed,
                   tuple(i for i in inputs if not i.get("indexed")), tuple(str(i["name"]) for i in inputs))

    def args(self, topics: Sequence[Any], data: Any) -> dict[str, Any]:
        """The log's arguments by name, in the event's order. Raises on a log that does not fit."""
        if len(topics) != 1 + len(self.indexed) or _as_bytes(topics[0]) != self.topic:
            raise ValueError(f"not a {self.name} log")
        out: dict[str, Any] = {}
        for item, topic in zip(self.indexed, topics[1:]):
            out[item["name"]] = _event_value(item, decode([abi_type(item)], _as_bytes(topic))[0])
        values = decode([abi_type(i) for i in self.data], _as_bytes(data))
        for item, value in zip(self.data, values):
            out[item["name"]] = _event_value(item, value)
        return {name: out[name] for name in self.order}
