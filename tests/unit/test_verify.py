"""verify's pure core (:func:`fedchain.verify.audit`): a report against the chain's commitments."""

from __future__ import annotations

import numpy as np

from fedchain.aggregator.compute import RoundContext, compute_round
from fedchain.aggregator.service import build_config
from fedchain.chain.types import Commitment
from fedchain.codec import encode_update
from fedchain.hashing import commitment
from fedchain.verify import VerifyResult, audit

from fakes import account

CTX = RoundContext(31337, "0x" + "52" * 20, 4)
BASE = {"w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "b": np.zeros(4, np.float32)}
CONFIG = build_config(task_spec="t", task_params={}, training={}, strategy={"name": "fedavg", "params": {}}, seed=1,
                      round_id=4, min_updates=2, eval_seed=0, max_samples=1000)
NODES = [account(i).address for i in (1, 2, 3)]


def _world(upload=(True, True, False)):
    blobs, commitments = {}, []
    for i, node in enumerate(NODES):
        data = encode_update({k: v * (1.0 + i) for k, v in BASE.items()}, CTX.identity(node))
        h = commitment(data)
        if upload[i]:
            blobs[h] = data
        commitments.append(Commitment(4, node, h, 100 * (i + 1)))
    return blobs, commitments


def _honest_report(blobs, commitments):
    comp = compute_round(CONFIG, BASE, commitments, blobs.get, CTX, min_updates=2)
    report = {"global_model_hash": comp.model_hash, "updates": [d.to_json() for d in comp.decisions]}
    return comp, report


def _audit(report, commitments, fetch, receipts=None, model_hash=None, accepted=2):
    result = VerifyResult(round_id=4, ok=False)
    audit(result, CONFIG, BASE, commitments, report, fetch, CTX, receipts or {},
          onchain_model_hash=model_hash or report["global_model_hash"], onchain_accepted=accepted, min_updates=2)
    return result


def test_honest_round_verifies_and_lists_the_missing_upload_as_a_claim():
    blobs, cs = _world()
    comp, report = _honest_report(blobs, cs)
    result = _audit(report, cs, blobs.get)
    assert result.problems == [] and result.recomputed_model_hash == comp.model_hash
    assert len(result.claims) == 1 and "missing_upload" in result.claims[0] and "receipt" in result.claims[0]


def test_missing_upload_claim_contested_by_a_receipt_fails_the_round():
    blobs, cs = _world()
    _, report = _honest_report(blobs, cs)
    receipt = {"node": NODES[2], "blob_hash": cs[2].update_hash, "round": 4}
    result = _audit(report, cs, blobs.get, receipts={NODES[2].lower(): receipt})
    assert any("signed a receipt" in p and "claim is false" in p for p in result.problems)


def test_a_receipt_for_another_blob_does_not_contest_the_claim():
    blobs, cs = _world()
    _, report = _honest_report(blobs, cs)
    receipt = {"node": NODES[2], "blob_hash": "0x" + "99" * 32, "round": 4}
    assert _audit(report, cs, blobs.get, receipts={NODES[2].lower(): receipt}).problems == []


def test_a_blob_that_appears_later_does_not_change_the_verdict_on_an_accepted_set():
    blobs, cs = _world()
    _, report = _honest_report(blobs, cs)
    late = dict(blobs)
    late[cs[2].update_hash] = encode_update({k: v * 3.0 for k, v in BASE.items()}, CTX.identity(NODES[2]))
    result = _audit(report, cs, late.get)
    assert result.problems == [] and result.recomputed_model_hash == report["global_model_hash"]
    assert "served now" in result.claims[0]


def test_aggregator_that_rejects_a_valid_update_is_caught():
    blobs, cs = _world(upload=(True, True, True))
    comp, report = _honest_report(blobs, cs)
    entry = next(u for u in report["updates"] if u["node"] == NODES[1])
    entry.update(accepted=False, reason="malformed: says the aggregator", weight=0.0)
    result = _audit(report, cs, blobs.get, model_hash=comp.model_hash, accepted=3)
    assert any("rejects" in p and "checks out" in p for p in result.problems)


def test_report_that_accepts_a_copied_blob_is_caught():
    blobs, cs = _world(upload=(True, True, True))
    copied = [cs[0], cs[1], Commitment(4, NODES[2], cs[0].update_hash, 300)]  # node 3 commits node 1's hash
    report = {"global_model_hash": "0x" + "11" * 32,
              "updates": [{"node": c.node, "update_hash": c.update_hash, "accepted": True, "reason": None}
                          for c in copied]}
    result = _audit(report, copied, blobs.get, accepted=3)
    assert any(NODES[2] in p and "not_own_update" in p for p in result.problems)
    assert any("global model hash differs" in p for p in result.problems)


def test_report_listing_other_nodes_than_the_chain_is_caught():
    blobs, cs = _world()
    _, report = _honest_report(blobs, cs)
    report["updates"] = report["updates"][:2]
    assert any("exactly the on-chain commitments" in p for p in _audit(report, cs, blobs.get).problems)
