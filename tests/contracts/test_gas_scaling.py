"""No function's gas grows with the number of registered nodes.

The same sequence of calls is measured with 1 registered node and again after 200 more were
admitted. It is arranged so that both measurements hit storage in the same state: the measured
rounds sit at the same position in a node's 4-round samples slot (rounds 2 and 6, each after a
round in which the node committed) and follow a finalized round; round 1, the first round ever,
is not measured. Receipts' ``gasUsed`` minus the intrinsic cost (21,000 + calldata) must be
identical; whole receipts differ at most by calldata bytes (e.g. a zero byte in a timestamp).
"""

import pytest
from conftest import ROUND_SECONDS, deploy_rounds, h, next_block_at, now
from eth_utils import keccak, to_checksum_address

BULK = 200
GRACE_EXCESS = 10_000


def intrinsic(tx) -> int:
    data = bytes.fromhex(tx.input[2:])
    return 21_000 + sum(4 if b == 0 else 16 for b in data)


def address(tag: str, i: int) -> str:
    """A deterministic address with no zero byte (so calldata costs the same for all of them)."""
    raw = bytes(b or 1 for b in keccak(text=f"{tag}/{i}")[:20])
    return to_checksum_address(raw)


def measure_phase(rounds, registry, admin, aggregator, node, outsider, tag):
    """Rounds k (warm-up), k+1 (measured open/submit/finalize), k+2 (measured expire)."""
    gas = {}
    latest = rounds.latestModelHash()
    # warm-up round: the node commits, so its samples slot for rounds k..k+3 exists
    tx = rounds.openRound(latest, h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})
    rid = tx.return_value
    rounds.submitUpdate(rid, h("update"), 1000, {"from": node})
    rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})
    # measured round
    gas["openRound"] = rounds.openRound(h("model"), h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})
    rid = gas["openRound"].return_value
    gas["submitUpdate"] = rounds.submitUpdate(rid, h("update"), 1000, {"from": node})
    gas["finalizeRound"] = rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})
    # a round nobody finalizes
    tx = rounds.openRound(h("model"), h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})
    next_block_at(now() + ROUND_SECONDS + GRACE_EXCESS)
    gas["expireRound"] = rounds.expireRound(tx.return_value, {"from": outsider})
    # the registry
    gas["admitNode"] = registry.admitNode(address(tag, 0), b"\x11" * 32, h("meta"), {"from": admin})
    gas["removeNode"] = registry.removeNode(address(tag, 0), {"from": admin})
    return gas


@pytest.fixture(scope="module")
def lone(registry, admin, aggregator, nodes):
    """A federation with exactly one node, nodes[0]."""
    registry.admitNode(nodes[0], b"", h("meta"), {"from": admin})
    rounds = deploy_rounds(registry, admin, aggregator)
    rounds.setGenesisModel(h("genesis"), {"from": admin})
    return rounds


def test_gas_does_not_grow_with_the_number_of_nodes(lone, registry, admin, aggregator, nodes, outsider):
    rounds = lone
    assert registry.nodeCount() == 1
    small = measure_phase(rounds, registry, admin, aggregator, nodes[0], outsider, "small")
    assert rounds.currentRoundId() == 3
    # Round 4 realigns the next phase on a 4-round samples slot (rounds 5-8, like 1-4).
    tx = rounds.openRound(h("model"), h("config"), now() + ROUND_SECONDS, 1, {"from": aggregator})
    rounds.submitUpdate(tx.return_value, h("update"), 1000, {"from": nodes[0]})
    rounds.finalizeRound(tx.return_value, h("model"), h("report"), 1, {"from": aggregator})

    for i in range(BULK):
        registry.admitNode(address("bulk", i), b"\x11" * 32, h("meta", i), {"from": admin})
    assert registry.nodeCount() == 1 + BULK

    large = measure_phase(rounds, registry, admin, aggregator, nodes[0], outsider, "large")
    assert rounds.currentRoundId() == 7
    report = {
        name: (small[name].gas_used, large[name].gas_used, small[name].gas_used - intrinsic(small[name]),
               large[name].gas_used - intrinsic(large[name]))
        for name in small
    }
    print("\nfunction        gas@1 node  gas@201 nodes  execution@1  execution@201")
    for name, (a, b, ea, eb) in report.items():
        print(f"{name:15s} {a:10,} {b:14,} {ea:12,} {eb:14,}")
    for name, (a, b, ea, eb) in report.items():
        assert ea == eb, f"{name}: execution gas {ea} with 1 node, {eb} with {1 + BULK}"
        assert abs(a - b) == abs(intrinsic(small[name]) - intrinsic(large[name])), name
