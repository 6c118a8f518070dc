"""Shared fixtures and helpers for the contract tests (brownie + anvil), protocol v2.

One contract: ``TrainingRounds`` inherits the node registry (``NodeRegistry`` is an abstract
module), so the registry functions and events are on the same address.

Accounts: ``admin`` deploys and holds DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE, ``aggregator``
holds AGGREGATOR_ROLE, ``nodes`` are five admitted nodes, ``outsider`` holds nothing. The nodes
are local accounts with known private keys (funded by ``admin``), so the same node can commit
directly (it sends the transaction) and through a relayed batch (it signs an EIP-712
``Commitment`` that somebody else sends).

Reverts are asserted with :func:`reverts_with`, which compares the exact revert data (4-byte
selector of the custom error's signature + ABI-encoded arguments) instead of brownie's rendered
message, so a test fails if any other error, or the same error with other arguments, is raised.
Events are decoded from the receipt's raw logs with eth_abi (:func:`decoded_events`) and compared
argument by argument (:func:`assert_event`).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Iterator

import pytest
from brownie import TrainingRounds, accounts, web3
from brownie.exceptions import VirtualMachineError
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

GRACE = 60
ROUND_SECONDS = 1_000
ZERO = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
N_NODES = 5
MAX_SAMPLES = 10**6
NONE, OPEN, FINALIZED, EXPIRED = 0, 1, 2, 3
# secp256k1's group order: (r, n - s) with v flipped is the "other" valid signature of a message.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ROUND_FIELDS = ("baseModelHash", "configHash", "globalModelHash", "reportHash", "accumulator", "seed", "deadline",
                "openedAt", "closedAt", "minUpdates", "eligibleCount", "commitCount", "acceptedCount", "maxSamples",
                "selectionRate", "relayCutoff", "closeWindow", "status")


def pytest_configure(config):
    # brownie 1.22 warns about its own internal use of rpc.snapshot/revert/sleep/mine.
    config.addinivalue_line("filterwarnings", r"ignore:rpc\.\w+ should not be called directly:FutureWarning")


# --- values ----------------------------------------------------------------------------------
def h(tag: str, i: int = 0) -> str:
    """A deterministic, distinct, non-zero bytes32 ("0x" + 64 hex) for a tag and an index."""
    return "0x" + keccak(text=f"{tag}/{i}").hex()


def b32(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def hx(value: Any) -> str:
    """bytes / HexString / str -> lower-case "0x..." hex."""
    return "0x" + b32(value).hex()


def addr(value: Any) -> str:
    return to_checksum_address(str(getattr(value, "address", value)))


def role(name: str) -> bytes:
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


def interface_id(signatures: list[str]) -> bytes:
    """ERC-165 interface id: XOR of the functions' 4-byte selectors."""
    value = 0
    for sig in signatures:
        value ^= int.from_bytes(keccak(text=sig)[:4], "big")
    return value.to_bytes(4, "big")


# --- the protocol, recomputed in Python (independently of the contract's own views) ----------
def initial_accumulator(contract: Any, round_id: int) -> bytes:
    """keccak256(abi.encode(block.chainid, address(this), roundId))"""
    return keccak(abi_encode(["uint256", "address", "uint256"], [web3.eth.chain_id, addr(contract), round_id]))


def fold(acc: bytes, node: Any, update_hash: Any, samples: int) -> bytes:
    """keccak256(abi.encode(acc, node, updateHash, uint256(numSamples)))"""
    types = ["bytes32", "address", "bytes32", "uint256"]
    return keccak(abi_encode(types, [b32(acc), addr(node), b32(update_hash), samples]))


def fold_all(contract: Any, round_id: int, entries: list[tuple[Any, Any, int]]) -> bytes:
    acc = initial_accumulator(contract, round_id)
    for node, update_hash, samples in entries:
        acc = fold(acc, node, update_hash, samples)
    return acc


def selected(seed: Any, rate: int, node: Any) -> bool:
    """uint256(keccak256(abi.encode(seed, node))) >> 192 < rate (rate 0: not sampled, everyone)."""
    if rate == 0:
        return True
    return int.from_bytes(keccak(abi_encode(["bytes32", "address"], [b32(seed), addr(node)])), "big") >> 192 < rate


def typed_commitment(contract: Any, round_id: int, update_hash: Any, samples: int) -> dict:
    """The full EIP-712 document a node signs (for eth_account.messages.encode_typed_data)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
            ],
            "Commitment": [
                {"name": "roundId", "type": "uint256"}, {"name": "updateHash", "type": "bytes32"},
                {"name": "numSamples", "type": "uint64"},
            ],
        },
        "primaryType": "Commitment",
        "domain": {"name": "fedchain", "version": "2", "chainId": web3.eth.chain_id,
                   "verifyingContract": addr(contract)},
        "message": {"roundId": round_id, "updateHash": b32(update_hash), "numSamples": samples},
    }


def compact(v: int, r: int, s: int) -> tuple[str, str]:
    """EIP-2098: (r, s | (v - 27) << 255) as bytes32 hex strings."""
    return "0x" + r.to_bytes(32, "big").hex(), "0x" + (s | ((v - 27) << 255)).to_bytes(32, "big").hex()


def sign(contract: Any, key: Any, round_id: int, update_hash: Any, samples: int, *, high_s: bool = False,
         digest_samples: int | None = None) -> tuple:
    """A SignedCommitment tuple (updateHash, numSamples, r, vs) signed with ``key`` over the
    contract's own digest. ``high_s`` turns it into the malleable twin (r, n - s, v flipped), which
    ecrecover accepts and the contract must refuse. ``digest_samples`` signs other numbers than the
    entry declares (a tampered entry)."""
    digest = contract.commitmentDigest(round_id, update_hash, samples if digest_samples is None else digest_samples)
    sig = Account.unsafe_sign_hash(b32(digest), private_key=key)
    v, r, s = sig.v, sig.r, sig.s
    if high_s:
        v, s = (28 if v == 27 else 27), SECP256K1_N - s
    return (update_hash, samples, *compact(v, r, s))


def sign_unmask(contract: Any, key: Any, round_id: int, unmask_hash: Any, *, high_s: bool = False) -> tuple:
    """A SignedUnmask tuple (unmaskHash, r, vs) signed with ``key`` over the contract's own digest
    (``high_s``: the malleable twin, as in :func:`sign`)."""
    sig = Account.unsafe_sign_hash(b32(contract.unmaskDigest(round_id, unmask_hash)), private_key=key)
    v, r, s = sig.v, sig.r, sig.s
    if high_s:
        v, s = (28 if v == 27 else 27), SECP256K1_N - s
    return (unmask_hash, *compact(v, r, s))


# --- time ------------------------------------------------------------------------------------
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
def _abi_type(item: dict) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][len("tuple"):]
    return item["type"]


def _error_abis() -> dict[str, list[str]]:
    """Custom error name -> argument types, from the contract's ABI (OpenZeppelin's included)."""
    out: dict[str, list[str]] = {}
    for item in TrainingRounds.abi:
        if item["type"] == "error":
            types = [_abi_type(i) for i in item["inputs"]]
            assert out.setdefault(item["name"], types) == types, f"two signatures for {item['name']}"
    return out


def error_data(name: str, *args: Any) -> bytes:
    """The revert data of custom error ``name(args)``."""
    types = _error_abis().get(name)
    assert types is not None, f"no custom error named {name} in the contract's ABI"
    assert len(types) == len(args), f"{name} takes {len(types)} arguments, test gives {len(args)}"
    values = [_abi_value(t, a) for t, a in zip(types, args)]
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    return selector + abi_encode(types, values)


def _abi_value(abi_type: str, value: Any) -> Any:
    if hasattr(value, "address"):  # brownie Account / Contract
        return str(value.address)
    if abi_type.startswith("bytes") and isinstance(value, str):
        return b32(value)
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
    for item in TrainingRounds.abi:
        if item["type"] == "event":
            sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
            out[keccak(text=sig)] = item
    return out


def decoded_events(tx: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Every ``name`` event (every event if None, with its name under "_event") in ``tx``,
    decoded from the raw logs with eth_abi (not brownie's renderer): addresses checksummed,
    bytes and bytes32 as lower-case "0x..." hex, integers as ints, structs as tuples."""
    out = []
    abis = _event_abis()
    for log in web3.eth.get_transaction_receipt(tx.txid)["logs"]:
        item = abis.get(bytes(log["topics"][0]))
        if item is None or (name is not None and item["name"] != name):
            continue
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        values = {}
        for inp, topic in zip(indexed, log["topics"][1:]):
            values[inp["name"]] = abi_decode([_abi_type(inp)], bytes(topic))[0]
        for inp, value in zip(plain, abi_decode([_abi_type(i) for i in plain], bytes(log["data"]))):
            values[inp["name"]] = value
        event = {k: _norm(v) for k, v in values.items()}
        if name is None:
            event["_event"] = item["name"]
        out.append(event)
    return out


def _norm(value: Any) -> Any:
    if hasattr(value, "address"):
        value = value.address
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, str) and value.startswith("0x"):
        return to_checksum_address(value) if len(value) == 42 else value.lower()
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


def submitted(tx: Any) -> list[tuple[str, str, int]]:
    """The (node, updateHash, numSamples) list of a transaction's UpdateSubmitted events, in order."""
    return [(e["node"], e["updateHash"], e["numSamples"]) for e in decoded_events(tx, "UpdateSubmitted")]


def round_dict(contract: Any, round_id: int) -> dict[str, Any]:
    values = contract.getRound(round_id)
    assert len(values) == len(ROUND_FIELDS)
    return {k: (hx(v) if i < 6 else int(v)) for i, (k, v) in enumerate(zip(ROUND_FIELDS, values))}


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


def node_key(i: int) -> str:
    """The private key of test node ``i`` (deterministic, so failures reproduce)."""
    return "0x" + keccak(text=f"fedchain test node/{i}").hex()


_LOCAL: dict[str, Any] = {}


def local_account(key: str) -> Any:
    """A brownie account for ``key`` (added once per session)."""
    if key not in _LOCAL:
        _LOCAL[key] = accounts.add(key)
    return _LOCAL[key]


@pytest.fixture(scope="module")
def admin():
    return accounts[0]


@pytest.fixture(scope="module")
def aggregator():
    return accounts[1]


@pytest.fixture(scope="module")
def outsider():
    return accounts[9]


@pytest.fixture(scope="module")
def keys():
    """Private keys of ``nodes``, in order."""
    return [node_key(i) for i in range(N_NODES)]


@pytest.fixture(scope="module")
def nodes(module_isolation, admin, keys):
    """Five accounts with known keys and some ETH (not admitted anywhere yet)."""
    out = [local_account(k) for k in keys]
    for node in out:
        admin.transfer(node, "10 ether")
    return out


def deploy(admin: Any, aggregator: Any = None, grace: int = GRACE) -> Any:
    contract = TrainingRounds.deploy(admin, grace, {"from": admin})
    if aggregator is not None:
        contract.grantRole(role("AGGREGATOR_ROLE"), aggregator, {"from": admin})
    return contract


@pytest.fixture(scope="module")
def registry(nodes, admin, aggregator):
    """A fresh TrainingRounds with no node and no genesis; ``aggregator`` holds AGGREGATOR_ROLE."""
    return deploy(admin, aggregator)


def admit_all(contract: Any, admin: Any, nodes: list[Any]) -> Any:
    for i, node in enumerate(nodes):
        contract.admitNode(node, b"", h("meta", i), {"from": admin})
    return contract


@pytest.fixture(scope="module")
def bare_rounds(nodes, admin, aggregator):
    """A fresh TrainingRounds with the five ``nodes`` admitted, but no genesis model yet."""
    return admit_all(deploy(admin, aggregator), admin, nodes)


@pytest.fixture(scope="module")
def genesis():
    return h("genesis")


@pytest.fixture(scope="module")
def rounds(nodes, admin, aggregator, genesis):
    """A fresh TrainingRounds ready for round 1: nodes admitted, aggregator set, genesis model set."""
    contract = admit_all(deploy(admin, aggregator), admin, nodes)
    contract.setGenesisModel(genesis, {"from": admin})
    return contract


def params(deadline: int, min_updates: int = 1, max_samples: int = MAX_SAMPLES, selection_rate: int = 0,
           relay_cutoff: int = 0, threshold: int = 0, unmask_window: int = 0, close_window: int = 0) -> tuple:
    """A RoundParams tuple (threshold 0: a transparent round)."""
    return (deadline, min_updates, max_samples, selection_rate, relay_cutoff, threshold, unmask_window, close_window)


class Fed:
    """Small driver for round lifecycles used by several test modules."""

    def __init__(self, rounds: Any, aggregator: Any, nodes: list[Any], keys: list[str]) -> None:
        self.rounds, self.aggregator, self.nodes, self.keys = rounds, aggregator, nodes, keys
        self._n = 0

    def open(self, *, min_updates: int = 1, seconds: int = ROUND_SECONDS, base: str | None = None,
             max_samples: int = MAX_SAMPLES, selection_rate: int = 0, relay_cutoff: int = 0, threshold: int = 0,
             unmask_window: int = 0, close_window: int = 0):
        """Open the next round from the latest model (transparent unless ``threshold``). Returns
        (roundId, tx, deadline)."""
        self._n += 1
        deadline = now() + seconds
        base = base if base is not None else self.rounds.latestModelHash()
        p = params(deadline, min_updates, max_samples, selection_rate, relay_cutoff, threshold, unmask_window,
                   close_window)
        tx = self.rounds.openRound(base, h("config", self._n), p, {"from": self.aggregator})
        return tx.return_value, tx, deadline

    def update(self, round_id: int, node: Any) -> str:
        return h(f"update/{round_id}", node_index(self.nodes, node))

    def submit(self, round_id: int, node: Any, samples: int = 100):
        return self.rounds.submitUpdate(round_id, self.update(round_id, node), samples, {"from": node})

    def signed(self, round_id: int, node: Any, samples: int = 100, **kw) -> tuple:
        key = self.keys[node_index(self.nodes, node)]
        return sign(self.rounds, key, round_id, self.update(round_id, node), samples, **kw)

    def batch(self, round_id: int, entries: list[tuple], sender: Any = None):
        return self.rounds.submitBatch(round_id, entries, {"from": sender or self.aggregator})

    def finalize(self, round_id: int, accepted: int | None = None):
        if accepted is None:
            accepted = round_dict(self.rounds, round_id)["commitCount"]
        return self.rounds.finalizeRound(round_id, h("model", round_id), h("report", round_id), accepted,
                                         {"from": self.aggregator})

    def expire(self, round_id: int, sender: Any):
        warp(max(now(), round_dict(self.rounds, round_id)["deadline"] + GRACE + 1))
        return self.rounds.expireRound(round_id, {"from": sender})

    def full_round(self, committers: list[Any] | None = None, *, samples: int = 100):
        """Open, let ``committers`` (default: every node) commit, finalize accepting all."""
        rid, _, deadline = self.open()
        for node in self.nodes if committers is None else committers:
            self.submit(rid, node, samples)
        if round_dict(self.rounds, rid)["commitCount"] != self.rounds.nodeCount():
            warp(max(now(), deadline + 1))
        self.finalize(rid)
        return rid


def node_index(nodes: list[Any], node: Any) -> int:
    return next((i for i, n in enumerate(nodes) if n == node), 99)


@pytest.fixture(scope="module")
def fed(rounds, aggregator, nodes, keys):
    return Fed(rounds, aggregator, nodes, keys)
