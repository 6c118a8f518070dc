"""Shared fixtures and helpers for the contract tests (brownie + anvil).

Accounts: ``admin`` deploys and holds every admin/registrar role, ``aggregator`` holds
AGGREGATOR_ROLE, ``nodes`` are five admitted nodes, ``outsider`` holds nothing.

Reverts are asserted with :func:`reverts_with`, which compares the exact revert data (4-byte
selector of the custom error's signature + ABI-encoded arguments) instead of brownie's rendered
message, so a test fails if any other error, or the same error with other arguments, is raised.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Iterator

import pytest
from brownie import NodeRegistry, TrainingRounds, accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

GRACE = 60
ROUND_SECONDS = 1_000
ZERO = "0x" + "00" * 32
N_NODES = 5


def pytest_configure(config):
    # brownie 1.22 warns about its own internal use of rpc.snapshot/revert/sleep/mine.
    config.addinivalue_line("filterwarnings", r"ignore:rpc\.\w+ should not be called directly:FutureWarning")


# --- values ----------------------------------------------------------------------------------
def h(tag: str, i: int = 0) -> str:
    """A deterministic, distinct, non-zero bytes32 ("0x" + 64 hex) for a tag and an index."""
    return "0x" + keccak(text=f"{tag}/{i}").hex()


def role(name: str) -> bytes:
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


# --- time ------------------------------------------------------------------------------------
def interface_id(signatures: list[str]) -> bytes:
    """ERC-165 interface id: XOR of the functions' 4-byte selectors."""
    value = 0
    for sig in signatures:
        value ^= int.from_bytes(keccak(text=sig)[:4], "big")
    return value.to_bytes(4, "big")


def now() -> int:
    """Timestamp of the latest block (what the contracts compare against, give or take a block)."""
    return int(web3.eth.get_block("latest")["timestamp"])


def next_block_at(timestamp: int) -> None:
    """Make the next mined block (e.g. the next transaction's) have exactly ``timestamp``."""
    resp = web3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])
    assert "error" not in resp, resp


def warp(timestamp: int) -> None:
    """Mine an empty block at ``timestamp``: from now on, ``now() == timestamp``."""
    next_block_at(timestamp)
    resp = web3.provider.make_request("evm_mine", [])
    assert "error" not in resp, resp


# --- reverts ---------------------------------------------------------------------------------
def _error_abis() -> dict[str, list[str]]:
    """Custom error name -> argument types, from both contracts' ABIs (OpenZeppelin's included)."""
    out: dict[str, list[str]] = {}
    for abi in (NodeRegistry.abi, TrainingRounds.abi):
        for item in abi:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                assert out.setdefault(item["name"], types) == types, f"two signatures for {item['name']}"
    return out


def error_data(name: str, *args: Any) -> bytes:
    """The revert data of custom error ``name(args)``."""
    types = _error_abis().get(name)
    assert types is not None, f"no custom error named {name} in the contracts' ABIs"
    values = [_abi_value(t, a) for t, a in zip(types, args)]
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    return selector + abi_encode(types, values)


def _abi_value(abi_type: str, value: Any) -> Any:
    if hasattr(value, "address"):  # brownie Account / Contract
        return str(value.address)
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return value


def describe(data: bytes) -> str:
    """Human-readable revert data, for failure messages."""
    for name, types in _error_abis().items():
        if keccak(text=f"{name}({','.join(types)})")[:4] == data[:4]:
            try:
                return f"{name}{tuple(abi_decode(types, data[4:]))}"
            except Exception:  # noqa: BLE001 - malformed payload: show it raw
                break
    return "0x" + data.hex()


def revert_data(exc: VirtualMachineError) -> bytes:
    """The raw revert data of a failed transaction (from anvil's trace) or call."""
    if exc.txid:
        result = web3.provider.make_request("debug_traceTransaction", [exc.txid, {}])["result"]
        value = result.get("returnValue") or ""
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    inner = exc.args[0] if exc.args else None  # an eth_call: brownie keeps the RPC error payload
    payload = inner.args[0] if isinstance(inner, Exception) and inner.args else inner
    if isinstance(payload, dict) and isinstance(payload.get("data"), str):
        return bytes.fromhex(payload["data"][2:])
    raise AssertionError(f"cannot find the revert data of {exc!r}")


@contextlib.contextmanager
def reverts_with(name: str, *args: Any) -> Iterator[None]:
    """Assert that the block reverts with exactly the custom error ``name(*args)``."""
    expected = error_data(name, *args)
    try:
        yield
    except VirtualMachineError as exc:
        actual = revert_data(exc)
        assert actual == expected, f"expected {describe(expected)}, reverted with {describe(actual)}"
    else:
        raise AssertionError(f"did not revert (expected {describe(expected)})")


def unauthorized(account: Any, role_name: str) -> tuple[str, Any, bytes]:
    """Arguments of reverts_with for OpenZeppelin's AccessControlUnauthorizedAccount."""
    return ("AccessControlUnauthorizedAccount", account, role(role_name))


# --- events ----------------------------------------------------------------------------------
def _event_abis() -> dict[bytes, dict[str, Any]]:
    out = {}
    for abi in (NodeRegistry.abi, TrainingRounds.abi):
        for item in abi:
            if item["type"] == "event":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                out[keccak(text=sig)] = item
    return out


def decoded_events(tx: Any, name: str) -> list[dict[str, Any]]:
    """Every ``name`` event in ``tx``, decoded from the raw logs with eth_abi (not brownie's
    renderer): addresses lower-case, bytes and bytes32 as "0x..." hex, integers as ints."""
    out = []
    for log in web3.eth.get_transaction_receipt(tx.txid)["logs"]:
        item = _event_abis().get(bytes(log["topics"][0]))
        if item is None or item["name"] != name:
            continue
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        values = {}
        for inp, topic in zip(indexed, log["topics"][1:]):
            values[inp["name"]] = abi_decode([inp["type"]], bytes(topic))[0]
        for inp, value in zip(plain, abi_decode([i["type"] for i in plain], bytes(log["data"]))):
            values[inp["name"]] = value
        out.append({k: _norm(v) for k, v in values.items()})
    return out


def _norm(value: Any) -> Any:
    if hasattr(value, "address"):
        value = value.address
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def assert_event(tx: Any, name: str, index: int = 0, **expected: Any) -> None:
    """Assert the ``index``-th ``name`` event of ``tx`` has exactly the ``expected`` arguments."""
    events = decoded_events(tx, name)
    assert len(events) > index, f"{len(events)} {name} event(s) in the transaction"
    event = events[index]
    assert set(event) == set(expected), f"{name} has arguments {sorted(event)}, test gives {sorted(expected)}"
    for key, value in expected.items():
        assert event[key] == _norm(value), f"{name}.{key}: {event[key]!r} != {value!r}"


def event_count(tx: Any, name: str) -> int:
    return len(decoded_events(tx, name))


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _freeze_gc():
    """brownie runs a full ``gc.collect()`` on every chain revert, i.e. once per test and per
    hypothesis example: ~50 ms over the ~150k objects brownie, web3 and hypothesis allocate at
    import. Freezing those (they live for the whole session anyway) makes it ~1 ms."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Every test starts from the state its module-scoped fixtures built."""


@pytest.fixture(scope="module")
def admin():
    return accounts[0]


@pytest.fixture(scope="module")
def aggregator():
    return accounts[1]


@pytest.fixture(scope="module")
def nodes():
    return list(accounts[2 : 2 + N_NODES])


@pytest.fixture(scope="module")
def outsider():
    return accounts[9]


@pytest.fixture(scope="module")
def registry(module_isolation, admin):
    """A fresh NodeRegistry with no nodes; ``admin`` holds DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE."""
    return NodeRegistry.deploy(admin, {"from": admin})


@pytest.fixture(scope="module")
def members(registry, admin, nodes):
    """``registry`` with the five ``nodes`` admitted."""
    for i, node in enumerate(nodes):
        registry.admitNode(node, b"", h("meta", i), {"from": admin})
    return registry


def deploy_rounds(registry: Any, admin: Any, aggregator: Any, grace: int = GRACE) -> Any:
    contract = TrainingRounds.deploy(registry, admin, grace, {"from": admin})
    contract.grantRole(role("AGGREGATOR_ROLE"), aggregator, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def bare_rounds(members, admin, aggregator):
    """TrainingRounds over ``members`` with AGGREGATOR_ROLE granted, but no genesis model yet."""
    return deploy_rounds(members, admin, aggregator)


@pytest.fixture(scope="module")
def genesis():
    return h("genesis")


@pytest.fixture(scope="module")
def rounds(members, admin, aggregator, genesis):
    """TrainingRounds ready for round 1: nodes admitted, aggregator set, genesis model set."""
    contract = deploy_rounds(members, admin, aggregator)
    contract.setGenesisModel(genesis, {"from": admin})
    return contract


class Fed:
    """Small driver for round lifecycles used by several test modules."""

    def __init__(self, rounds: Any, registry: Any, aggregator: Any, nodes: list[Any]) -> None:
        self.rounds, self.registry, self.aggregator, self.nodes = rounds, registry, aggregator, nodes
        self._n = 0

    def open(self, *, min_updates: int = 1, seconds: int = ROUND_SECONDS, base: str | None = None):
        """Open the next round from the latest model. Returns (roundId, tx, deadline)."""
        self._n += 1
        deadline = now() + seconds
        base = base if base is not None else self.rounds.latestModelHash()
        tx = self.rounds.openRound(base, h("config", self._n), deadline, min_updates, {"from": self.aggregator})
        return tx.return_value, tx, deadline

    def submit(self, round_id: int, node: Any, samples: int = 100):
        return self.rounds.submitUpdate(round_id, h(f"update/{round_id}", node_index(self.nodes, node)), samples,
                                        {"from": node})

    def finalize(self, round_id: int, accepted: int | None = None):
        if accepted is None:
            accepted = self.rounds.getRound(round_id)[8]
        return self.rounds.finalizeRound(round_id, h("model", round_id), h("report", round_id), accepted,
                                         {"from": self.aggregator})

    def expire(self, round_id: int, sender: Any):
        chain.sleep(ROUND_SECONDS + GRACE + 1)
        return self.rounds.expireRound(round_id, {"from": sender})

    def full_round(self, committers: list[Any] | None = None, *, samples: int = 100):
        """Open, let ``committers`` (default: every node) commit, finalize accepting all."""
        rid, _, _ = self.open()
        for node in self.nodes if committers is None else committers:
            self.submit(rid, node, samples)
        self.finalize(rid)
        return rid


def node_index(nodes: list[Any], node: Any) -> int:
    return next((i for i, n in enumerate(nodes) if n == node), 99)


@pytest.fixture(scope="module")
def fed(rounds, registry, aggregator, nodes):
    return Fed(rounds, registry, aggregator, nodes)
