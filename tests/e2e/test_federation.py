"""End to end: real anvil, real uvicorn aggregator, node processes (see conftest.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess

import httpx
import pytest

from fedchain.chain.accounts import dev_account
from fedchain.chain.types import RoundStatus
from fedchain.devchain import free_port
from fedchain.errors import ContractRevert
from fedchain.hashing import commitment

from harness import ROUNDS, _api_up, _spawn, aggregator_cmd, wait_for

HONEST = {dev_account(i).address for i in (1, 2, 3)}
ROGUE = dev_account(4).address
CRASHER = dev_account(5).address
COPIER = dev_account(6).address
RELAYED = dev_account(7).address  # relay mode, censored by the aggregator: falls back to a direct commit
INFLATER = dev_account(8).address


def _round(fed, rid):
    r = httpx.get(f"{fed.api_url}/rounds/{rid}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_round_finalizes_with_quorum_despite_rogue_and_crashed_nodes(federation):
    for rid in range(1, ROUNDS + 1):
        info = federation.chain.get_round(rid)
        assert info.status == RoundStatus.FINALIZED, federation.log("aggregator")[-2000:]
        body = _round(federation, rid)
        accepted = {u["node"] for u in body["updates"] if u["accepted"]}
        assert accepted == HONEST | {RELAYED, INFLATER} | ({CRASHER} if rid == 1 else set())
        by_node = {u["node"]: u for u in body["updates"]}
        assert by_node[ROGUE]["accepted"] is False and by_node[ROGUE]["reason"].startswith("missing_upload")
        assert by_node[COPIER]["accepted"] is False and by_node[COPIER]["reason"].startswith("not_own_update")
        assert body["accepted_count"] == info.accepted_count == len(accepted)
    # the crashed node never committed in round 2, yet the round closed at its deadline with quorum
    assert federation.chain.get_commitment(2, CRASHER) is None


def test_onchain_model_hash_matches_sha256_commitment_of_served_blob(federation):
    for rid in range(1, ROUNDS + 1):
        info = federation.chain.get_round(rid)
        served = httpx.get(f"{federation.api_url}/blobs/{info.global_model_hash}", timeout=10)
        assert served.status_code == 200
        assert commitment(served.content) == info.global_model_hash
        report = httpx.get(f"{federation.api_url}/blobs/{info.report_hash}", timeout=10)
        assert commitment(report.content) == info.report_hash


def test_round_record_agrees_with_chain(federation):
    for rid in range(1, ROUNDS + 1):
        info = federation.chain.get_round(rid)
        body = _round(federation, rid)
        assert body["status"] == "finalized"
        assert body["base_model_hash"] == info.base_model_hash
        assert body["config_hash"] == info.config_hash
        assert body["global_model_hash"] == info.global_model_hash
        assert body["report_hash"] == info.report_hash
        assert body["deadline"] == info.deadline and body["min_updates"] == info.min_updates
        commits = {c.node: c for c in federation.chain.commitments(rid)}
        assert {u["node"] for u in body["updates"]} == set(commits)
        for u in body["updates"]:
            assert u["update_hash"] == commits[u["node"]].update_hash
            assert u["num_samples"] == commits[u["node"]].num_samples
            assert u["tx_hash"].startswith("0x") and u["gas_used"] > 0
        assert body["open_gas_used"] > 0 and body["close_gas_used"] > 0
        assert "rmse" in body["metrics"]
    # round 2 trains from round 1's model
    assert federation.chain.get_round(2).base_model_hash == federation.chain.get_round(1).global_model_hash


def test_verify_passes_for_every_round(federation):
    for rid in range(1, ROUNDS + 1):
        out = federation.cli("verify", "--round", str(rid), "--dev-account", "1")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "verified" in out.stdout
        assert "missing_upload" in out.stdout and "the aggregator's claim" in out.stdout


def test_rounds_command_prints_history(federation):
    out = federation.cli("rounds")
    assert out.returncode == 0, out.stderr
    for rid in range(1, ROUNDS + 1):
        assert federation.chain.get_round(rid).global_model_hash[:18] in out.stdout


def test_unknown_round_and_blob_are_404(federation):
    assert httpx.get(f"{federation.api_url}/rounds/999").status_code == 404
    assert httpx.get(f"{federation.api_url}/blobs/0x{'ab' * 32}").status_code == 404


def test_late_commit_surfaces_contract_error_by_name(federation):
    from fedchain.chain.client import ChainClient
    from fedchain.settings import REPO_ROOT

    node = ChainClient.connect(federation.rpc_url, deployments_dir=federation.deployments_dir, repo_root=REPO_ROOT,
                               account=dev_account(1))
    with pytest.raises(ContractRevert) as err:
        node.submit_update(1, "0x" + "11" * 32, 10)
    assert err.value.name in {"RoundNotOpen", "DeadlinePassed"}
    assert err.value.name in str(err.value)


def test_verify_fails_on_altered_blob(federation):
    info = federation.chain.get_round(1)
    report = httpx.get(f"{federation.api_url}/blobs/{info.report_hash}").json()
    victim = next(u["update_hash"] for u in report["updates"] if u["accepted"])
    path = next(p for p in (federation.data_dir / "blobs").rglob("*") if p.is_file() and p.name.endswith(victim[2:]))
    original = path.read_bytes()
    try:
        altered = bytearray(original)
        altered[-1] ^= 0x01  # flip one bit of one weight
        path.write_bytes(bytes(altered))
        out = federation.cli("verify", "--round", "1", "--dev-account", "2")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "MISMATCH" in out.stdout and "does not check out" in out.stdout
        assert "Traceback" not in out.stdout + out.stderr
    finally:
        path.write_bytes(original)
    assert federation.cli("verify", "--round", "1", "--dev-account", "2").returncode == 0


def test_deleting_index_and_restarting_reproduces_rounds(federation):
    before = httpx.get(f"{federation.api_url}/rounds").json()
    details = [_round(federation, rid) for rid in range(1, ROUNDS + 1)]
    federation.aggregator.send_signal(signal.SIGINT)
    federation.aggregator.wait(20)
    (federation.data_dir / "index.sqlite").unlink()
    port = int(federation.api_url.rsplit(":", 1)[1])
    agg = _spawn(aggregator_cmd(federation.rpc_url, port, federation.data_dir, federation.deployments_dir,
                                "--rounds", "0"), federation.workdir / "aggregator-restart.log", federation.env)
    federation.procs.append(agg)
    federation.aggregator = agg
    wait_for(lambda: _api_up(federation.api_url), 90, "the restarted API")
    wait_for(lambda: httpx.get(f"{federation.api_url}/rounds").json() == before, 30, "the rebuilt index")
    assert [_round(federation, rid) for rid in range(1, ROUNDS + 1)] == details


def test_round_without_quorum_is_expired(federation):
    """No node runs any more: a round asking for 3 updates gets none and is expired after the grace period."""
    data_dir = federation.workdir / "agg-expire"
    shutil.copytree(federation.data_dir / "blobs", data_dir / "blobs")  # the latest model must be servable
    before = federation.chain.current_round_id()
    out = subprocess.run(
        aggregator_cmd(federation.rpc_url, free_port(), data_dir, federation.deployments_dir,
                       "--rounds", "1", "--min-updates", "3", "--round-seconds", "2", "--exit-when-done"),
        capture_output=True, text=True, env=federation.env, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rid = federation.chain.current_round_id()
    assert rid == before + 1
    info = federation.chain.get_round(rid)
    assert info.status == RoundStatus.EXPIRED and info.global_model_hash is None
    assert "expired" in out.stdout
    # the federation's history shows it, and the next round would start from the last finalized model
    wait_for(lambda: _round(federation, rid)["status"] == "expired", 30, "the index to show the expiry")
    assert federation.chain.latest_model_hash() == federation.chain.get_round(before).global_model_hash


def test_live_api_pushes_round_events_that_the_chain_confirms_and_nodes_follow_them(federation):
    from fedchain.apiclient import bounded_lines, parse_events

    latest = federation.chain.current_round_id()
    with httpx.stream("GET", f"{federation.api_url}/events", timeout=httpx.Timeout(10, read=30)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = next(parse_events(bounded_lines(r.iter_bytes())))  # the first: the latest the API has seen
    assert event["round"] >= latest
    on_chain = federation.chain.get_round(event["round"]).status
    expected = {"open": {RoundStatus.OPEN, RoundStatus.FINALIZED, RoundStatus.EXPIRED},
                "sealed": {RoundStatus.OPEN, RoundStatus.FINALIZED, RoundStatus.EXPIRED},
                "finalized": {RoundStatus.FINALIZED}, "expired": {RoundStatus.EXPIRED}}[event["status"]]
    assert on_chain in expected, (event, on_chain)
    for i in (1, 2, 3):  # honest nodes woke on these events rather than polling every 0.5 s
        assert "following the aggregator's round events (GET /events)" in federation.log(f"node-{i}")
