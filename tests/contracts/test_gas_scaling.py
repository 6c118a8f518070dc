"""No function's gas grows with the number of registered nodes, in transparent and secure rounds.

The same sequence of calls is measured in a federation of 2 nodes and again after 200 more were
admitted. Both measurements hit storage in the same state: each measured round follows a round in
which the measured nodes committed (steady state: non-zero to non-zero slot writes) and that was
finalized. Receipts' ``gasUsed`` minus the intrinsic cost (21,000 + calldata) must be identical;
whole receipts differ at most by calldata bytes (e.g. a zero byte in a timestamp or a signature).
"""

import pytest
from conftest import ROUND_SECONDS, deploy, h, node_key, now, params, sign, sign_unmask, warp
from eth_account import Account
from eth_utils import keccak, to_checksum_address

BULK = 200
GRACE_EXCESS = 10_000
UNMASK_WINDOW = 500


def intrinsic(tx) -> int:
    data = bytes.fromhex(tx.input[2:])
    return 21_000 + sum(4 if b == 0 else 16 for b in data)


def address(tag: str, i: int) -> str:
    """A deterministic address with no zero byte (so calldata costs the same for all of them)."""
    raw = bytes(b or 1 for b in keccak(text=f"{tag}/{i}")[:20])
    return to_checksum_address(raw)


def close_after_deadline(rounds, rid, aggregator):
    warp(now() + ROUND_SECONDS + 1)  # the same path for 2 and for 202 eligible nodes
    return rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})


def measure_phase(rounds, admin, aggregator, node, signer, outsider, tag):
    """Rounds k (warm-up), k+1 (measured open/submit/batch/finalize), k+2 (measured expire)."""
    gas = {}
    latest = rounds.latestModelHash()
    rid = rounds.openRound(latest, h("config"), params(now() + ROUND_SECONDS), {"from": aggregator}).return_value
    rounds.submitUpdate(rid, h("update"), 1000, {"from": node})
    rounds.submitBatch(rid, [sign(rounds, signer, rid, h("update"), 1000)], {"from": aggregator})
    close_after_deadline(rounds, rid, aggregator)
    # measured round
    gas["openRound"] = rounds.openRound(h("model"), h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})
    rid = gas["openRound"].return_value
    gas["submitUpdate"] = rounds.submitUpdate(rid, h("update"), 1000, {"from": node})
    gas["submitBatch"] = rounds.submitBatch(rid, [sign(rounds, signer, rid, h("update"), 1000)], {"from": aggregator})
    gas["finalizeRound"] = close_after_deadline(rounds, rid, aggregator)
    # a round nobody finalizes
    tx = rounds.openRound(h("model"), h("config"), params(now() + ROUND_SECONDS), {"from": aggregator})
    warp(now() + ROUND_SECONDS + GRACE_EXCESS)
    gas["expireRound"] = rounds.expireRound(tx.return_value, {"from": outsider})
    # secure rounds: a warm-up round, then the measured one (both sealed after the deadline, the
    # same path whatever the eligible count)
    secure_round(rounds, aggregator, node, signer)
    gas.update(secure_round(rounds, aggregator, node, signer))
    # the registry
    gas["admitNode"] = rounds.admitNode(address(tag, 0), b"\x11" * 32, h("meta"), {"from": admin})
    gas["removeNode"] = rounds.removeNode(address(tag, 0), {"from": admin})
    return gas


def secure_round(rounds, aggregator, node, signer):
    """A secure round (threshold 1) both nodes commit to and post in, finalized. Returns its receipts."""
    gas = {}
    p = params(now() + ROUND_SECONDS, threshold=1, unmask_window=UNMASK_WINDOW)
    gas["openRound_secure"] = rounds.openRound(h("model"), h("config"), p, {"from": aggregator})
    rid = gas["openRound_secure"].return_value
    rounds.submitUpdate(rid, h("update"), 1000, {"from": node})
    rounds.submitBatch(rid, [sign(rounds, signer, rid, h("update"), 1000)], {"from": aggregator})
    warp(now() + ROUND_SECONDS + 1)
    gas["sealCommitments"] = rounds.sealCommitments(rid, [], rounds.getRound(rid)["commitCount"], {"from": aggregator})
    gas["submitUnmask"] = rounds.submitUnmask(rid, h("unmask"), {"from": node})
    gas["submitUnmaskBatch"] = rounds.submitUnmaskBatch(rid, [sign_unmask(rounds, signer, rid, h("unmask"))],
                                                        {"from": aggregator})
    gas["finalizeRound_secure"] = rounds.finalizeRound(rid, h("model"), h("report"), 1, {"from": aggregator})
    return gas


@pytest.fixture(scope="module")
def pair(nodes, admin, aggregator):
    """A federation of two nodes: nodes[0] commits directly, a second key through batches."""
    rounds = deploy(admin, aggregator)
    signer = node_key(500)
    rounds.admitNode(nodes[0], b"", h("meta"), {"from": admin})
    rounds.admitNode(Account.from_key(signer).address, b"", h("meta"), {"from": admin})
    rounds.setGenesisModel(h("genesis"), {"from": admin})
    return rounds, signer


def test_gas_does_not_grow_with_the_number_of_nodes(pair, admin, aggregator, nodes, outsider):
    rounds, signer = pair
    assert rounds.nodeCount() == 2
    small = measure_phase(rounds, admin, aggregator, nodes[0], signer, outsider, "small")
    for i in range(BULK):
        rounds.admitNode(address("bulk", i), b"\x11" * 32, h("meta", i), {"from": admin})
    assert rounds.nodeCount() == 2 + BULK
    large = measure_phase(rounds, admin, aggregator, nodes[0], signer, outsider, "large")
    assert rounds.getRound(large["openRound"].return_value)[10] == 2 + BULK  # eligibleCount
    report = {
        name: (small[name].gas_used, large[name].gas_used, small[name].gas_used - intrinsic(small[name]),
               large[name].gas_used - intrinsic(large[name]))
        for name in small
    }
    print("\nfunction               gas@2 nodes  gas@202 nodes  execution@2  execution@202")
    for name, (a, b, ea, eb) in report.items():
        print(f"{name:22s} {a:11,} {b:14,} {ea:12,} {eb:14,}")
    for name, (a, b, ea, eb) in report.items():
        assert ea == eb, f"{name}: execution gas {ea} with 2 nodes, {eb} with {2 + BULK}"
        assert abs(a - b) == abs(intrinsic(small[name]) - intrinsic(large[name])), name
