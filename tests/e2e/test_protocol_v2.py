"""End to end: each hole of protocol v1 (issue #7), tried on the real federation (conftest.py).

The federation's own rounds show the hostile nodes' outcomes. Then this module opens one more
round itself with the aggregator's key ("late round"), with a short deadline, to try what an
aggregator or a node could do while a round is open: finalize early against a slow node, read a
sealed blob, upload after the deadline, smuggle a withheld blob into another round.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fedchain.aggregator.config import RoundRules
from fedchain.aggregator.service import build_config
from fedchain.apiclient import READ_EXPIRES_HEADER
from fedchain.auth import READ_HEADER, recover_receipt_signer, sign_blob_read, sign_upload
from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundParams, RoundStatus
from fedchain.codec import UpdateIdentity, decode_json, decode_tensors, encode_json, encode_update
from fedchain.errors import ContractRevert
from fedchain.hashing import commitment
from fedchain.settings import REPO_ROOT
from fedchain.store import FilesystemStore

from harness import MAX_SAMPLES, ROUNDS, wait_for

COPIER, RELAYED, INFLATER, ROGUE = (dev_account(i).address for i in (6, 7, 8, 4))


def _client(fed, i: int) -> ChainClient:
    return ChainClient.connect(fed.rpc_url, deployments_dir=fed.deployments_dir, repo_root=REPO_ROOT,
                               account=dev_account(i))


def _report(fed, rid: int) -> dict:
    info = fed.chain.get_round(rid)
    return httpx.get(f"{fed.api_url}/blobs/{info.report_hash}", timeout=10).json()


def _read_headers(fed, i: int, h: str) -> dict[str, str]:
    expires = int(time.time()) + 120
    return {READ_HEADER: sign_blob_read(dev_account(i), fed.chain.chain_id, fed.chain.rounds_address, h, expires),
            READ_EXPIRES_HEADER: str(expires)}


# --- what the federation's own rounds show -----------------------------------------------------
def test_copied_commitment_is_rejected_as_not_own_update(federation):
    assert "copied" in federation.log("copier")
    for rid in range(1, ROUNDS + 1):
        entry = next(u for u in _report(federation, rid)["updates"] if u["node"] == COPIER)
        assert not entry["accepted"] and entry["reason"].startswith("not_own_update")
        assert entry["weight"] == 0.0


def test_inflated_sample_count_is_refused_by_the_contract_and_the_weight_is_capped(federation):
    log = federation.log("inflater")
    assert "inflated commitment refused: TooManySamples" in log and "ACCEPTED" not in log
    for rid in range(1, ROUNDS + 1):
        updates = _report(federation, rid)["updates"]
        mine = next(u for u in updates if u["node"] == INFLATER)
        assert mine["accepted"] and mine["num_samples"] == MAX_SAMPLES
        total = sum(u["num_samples"] for u in updates if u["accepted"])
        assert mine["weight"] == pytest.approx(MAX_SAMPLES / total)
    # the index and the API survived the hostile values (no overflow, no crash)
    assert httpx.get(f"{federation.api_url}/health", timeout=5).json()["status"] in ("ok", "degraded")


def test_censored_relay_node_falls_back_to_a_direct_commit_and_is_accepted(federation):
    log = federation.log("node-7")
    assert "posted for relaying" in log and "committing directly" in log
    assert "never relay" not in log
    for rid in range(1, ROUNDS + 1):
        entry = next(u for u in _report(federation, rid)["updates"] if u["node"] == RELAYED)
        assert entry["accepted"]


def test_nodes_keep_a_receipt_signed_by_the_aggregator(federation):
    path = federation.workdir / "receipts" / "node-1" / "round-1.json"
    assert path.exists(), federation.log("node-1")[-2000:]
    r = json.loads(path.read_text())
    assert r["node"] == dev_account(1).address and r["round"] == 1
    signer = recover_receipt_signer(r["signature"], federation.chain.chain_id, federation.chain.rounds_address, 1,
                                    r["node"], r["blob_hash"])
    assert signer == dev_account(0).address
    shown = federation.cli("node", "--dev-account", "1", "--show-receipts", "--receipts-dir", str(path.parent))
    assert shown.returncode == 0 and r["blob_hash"][:20] in shown.stdout and dev_account(0).address[:20] in shown.stdout


# --- one more round, opened here with the aggregator's key -----------------------------------------
@pytest.fixture(scope="module")
def late_round(federation):
    """Round N+1 with a 40 s deadline, opened by the aggregator's key; nobody but this module acts in it."""
    aggregator = _client(federation, 0)
    store = FilesystemStore(federation.data_dir / "blobs")
    rid = aggregator.current_round_id() + 1
    config = build_config(task_spec="options-iv", task_params={}, training={}, strategy={"name": "fedavg", "params": {}},
                          seed=rid, round_id=rid, min_updates=1, eval_seed=0, max_samples=MAX_SAMPLES)
    config_hash = store.put(encode_json(config))
    deadline = aggregator.block_timestamp() + 40
    got, _ = aggregator.open_round(aggregator.latest_model_hash(), config_hash,
                                   RoundParams(deadline=deadline, min_updates=1, max_samples=MAX_SAMPLES))
    assert got == rid
    return rid


def _upload(fed, i: int, rid: int, blob: bytes) -> httpx.Response:
    h = commitment(blob)
    sig = sign_upload(dev_account(i), fed.chain.chain_id, fed.chain.rounds_address, rid, h)
    return httpx.put(f"{fed.api_url}/rounds/{rid}/updates/{h}", content=blob, timeout=30,
                     headers={"X-Fedchain-Signature": sig, "Content-Type": "application/octet-stream"})


def _my_update(fed, i: int, rid: int, scale: float = 1.0) -> bytes:
    info = fed.chain.get_round(rid)
    base = decode_tensors(httpx.get(f"{fed.api_url}/blobs/{info.base_model_hash}", timeout=10).content)
    return encode_update({k: v * scale for k, v in base.items()},
                         UpdateIdentity(fed.chain.chain_id, fed.chain.rounds_address, rid, dev_account(i).address))


def test_update_blob_is_sealed_while_its_round_is_open(federation, late_round):
    blob = _my_update(federation, 1, late_round, 1.5)
    r = _upload(federation, 1, late_round, blob)
    assert r.status_code == 201, r.text
    h = commitment(blob)
    anonymous = httpx.get(f"{federation.api_url}/blobs/{h}", timeout=10)
    member = httpx.get(f"{federation.api_url}/blobs/{h}", headers=_read_headers(federation, 2, h), timeout=10)
    for resp in (anonymous, member):  # nobody, not even a member, reads it before the round closes
        assert resp.status_code == 403 and resp.json()["reason"] == "sealed"


def test_early_finalize_against_a_slow_node_reverts_commit_phase_open(federation, late_round):
    _client(federation, 1).submit_update(late_round, commitment(_my_update(federation, 1, late_round, 1.5)), 10)
    with pytest.raises(ContractRevert) as err:  # one of 8 eligible nodes committed; the others are "slow"
        _client(federation, 0).finalize_round(late_round, "0x" + "12" * 32, "0x" + "34" * 32, 1)
    assert err.value.name == "CommitPhaseOpen"
    assert err.value.args_dict["commitCount"] == 1 and err.value.args_dict["eligibleCount"] == 8


def test_withheld_blob_uploaded_to_another_round_is_refused_and_verify_is_unchanged(federation, late_round):
    withheld = (federation.workdir / "withheld" / "round-1.safetensors").read_bytes()
    assert commitment(withheld) == federation.chain.get_commitment(1, ROGUE).update_hash
    r = _upload(federation, 4, late_round, withheld)  # a round-N+1 signature over a round-1 blob
    assert r.status_code == 422 and r.json()["reason"] == "not_own_update", r.text
    out = federation.cli("verify", "--round", "1", "--dev-account", "1")
    assert out.returncode == 0, out.stdout + out.stderr


def test_upload_after_the_deadline_by_chain_time_is_refused_with_a_reason(federation, late_round):
    info = federation.chain.get_round(late_round)
    wait_for(lambda: federation.chain.block_timestamp() > info.deadline, 60, "the late round's deadline")
    r = _upload(federation, 2, late_round, _my_update(federation, 2, late_round, 0.5))
    assert r.status_code == 409 and r.json()["reason"] == "upload_closed", r.text
    with pytest.raises(ContractRevert) as err:
        _client(federation, 2).submit_update(late_round, "0x" + "56" * 32, 10)
    assert err.value.name == "DeadlinePassed"


def test_sealed_blob_opens_to_members_after_the_round_closes(federation, late_round):
    blob = _my_update(federation, 1, late_round, 1.5)
    h = commitment(blob)
    info = federation.chain.get_round(late_round)
    grace = federation.chain.grace_period()
    wait_for(lambda: federation.chain.block_timestamp() > info.deadline + grace, 60, "the grace period")
    if federation.chain.get_round(late_round).status == RoundStatus.OPEN:
        _client(federation, 3).expire_round(late_round)
    wait_for(lambda: httpx.get(f"{federation.api_url}/rounds/{late_round}", timeout=5).json()["status"] == "expired",
             30, "the index to see the expiry")
    anonymous = httpx.get(f"{federation.api_url}/blobs/{h}", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["reason"] == "read_unsigned"
    outsider = httpx.get(f"{federation.api_url}/blobs/{h}", timeout=10,
                         headers={**_read_headers(federation, 9, h)})
    assert outsider.status_code == 403 and outsider.json()["reason"] == "not_a_member"
    member = httpx.get(f"{federation.api_url}/blobs/{h}", headers=_read_headers(federation, 2, h), timeout=10)
    assert member.status_code == 200 and commitment(member.content) == h
    # global models, configs and reports stay public
    last = federation.chain.get_round(ROUNDS)
    for public in (last.global_model_hash, last.config_hash, last.report_hash):
        assert httpx.get(f"{federation.api_url}/blobs/{public}", timeout=10).status_code == 200
    config = decode_json(httpx.get(f"{federation.api_url}/blobs/{info.config_hash}", timeout=10).content,
                         max_bytes=1 << 20)
    assert RoundRules.of(config).update_access == "members"


# --- faults ------------------------------------------------------------------------------------
def test_aggregator_keeps_serving_through_an_rpc_outage_and_finishes_its_round(federation, late_round):
    """A second aggregator (its own API, a copy of the store) reaches the chain through a proxy that
    is cut mid-round: the API keeps answering with status degraded, and after the outage the round
    loop carries on where it was and closes the round."""
    import shutil
    import subprocess

    from fedchain.devchain import free_port

    from harness import CuttableProxy, _api_up, _spawn, aggregator_cmd

    wait_for(lambda: federation.chain.get_round(late_round).status != RoundStatus.OPEN, 90, "the late round to close")
    proxy = CuttableProxy(int(federation.rpc_url.rsplit(":", 1)[1]))
    data_dir = federation.workdir / "agg-outage"
    shutil.copytree(federation.data_dir / "blobs", data_dir / "blobs")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    before = federation.chain.current_round_id()
    agg = _spawn(aggregator_cmd(proxy.url, port, data_dir, federation.deployments_dir, "--rounds", "1",
                                "--min-updates", "1", "--round-seconds", "8", "--exit-when-done"),
                 federation.workdir / "aggregator-outage.log", federation.env)
    try:
        wait_for(lambda: _api_up(api) and federation.chain.current_round_id() > before, 90, "the outage round to open")
        proxy.cut()
        wait_for(lambda: httpx.get(f"{api}/health", timeout=5).json()["status"] == "degraded", 60,
                 "/health to report degraded")
        assert httpx.get(f"{api}/rounds", timeout=5).status_code == 200  # reads are still served
        assert agg.poll() is None, "the aggregator died on an RPC outage"
        # The outage lasts until the round loop itself has met it (web3 retries a short one inside
        # a call), reported it to /health and scheduled a retry.
        wait_for(lambda: "round loop: cannot" in (httpx.get(f"{api}/health", timeout=5).json()["detail"] or ""), 60,
                 "the round loop to report the outage")
        assert agg.poll() is None, "the aggregator died on an RPC outage"
        proxy.restore()
        assert agg.wait(120) == 0, federation.log("aggregator-outage")[-3000:]
    finally:
        proxy.stop()
        if agg.poll() is None:
            agg.kill()
    log = federation.log("aggregator-outage")
    assert "retrying in" in log and "Traceback" not in log
    assert federation.chain.get_round(before + 1).status == RoundStatus.EXPIRED  # nobody trained: no quorum
