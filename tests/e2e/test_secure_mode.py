"""End to end: secure mode (issue #9) on a real anvil, the real aggregator (uvicorn) and ten real
node processes, with dropouts that are real crashes (``--crash-at``: the process dies there).

Threshold t = 6 of 10 (the default majority). Node 8 runs in relay mode, node 9 trains with record-level DP-SGD. The federation runs three rounds:

1. nodes 1-3 die after uploading their masked update, before committing: 7 survivors, the
   survivors reveal the pair seeds of the three dropped nodes, and the round finalizes;
2. nodes 4-6 die after committing, before posting their unmasking blob: 10 survivors, 7 posts
   (>= t) reconstruct the dead nodes' self masks, and the round finalizes with all 10 inputs;
3. nodes 1-5 die after committing: 5 posts < t, the masks cannot be removed, and the round expires.

A crashed node is restarted (a fresh process) once its round has closed, as an operator would.
During round 1 the test also uploads a malformed masked blob and an unmasking blob out of turn.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from fedchain.auth import sign_upload
from fedchain.chain.accounts import dev_account
from fedchain.chain.types import RoundStatus
from fedchain.codec import UpdateIdentity, decode_json, decode_tensors, encode_update
from fedchain.devchain import free_port
from fedchain.hashing import commitment
from fedchain.store import FilesystemStore

from harness import _api_up, _spawn, aggregator_cmd, deploy_dev_chain, stop_all, wait_for

NODES = 10
THRESHOLD = NODES // 2 + 1
ROUND_SECONDS = 60
UNMASK_WINDOW = 12
NOISE = 0.05
#: node -> its --crash-at; the plan of the module docstring.
CRASHES = {1: "after-upload@1", 2: "after-upload@1", 3: "after-upload@1",
           4: "after-commit@2", 5: "after-commit@2", 6: "after-commit@2"}
ROUND3_CRASHES = (1, 2, 3, 4, 5)
#: A node without gas in mind: its commitment and its unmasking post are relayed by the aggregator.
RELAYED = 8
#: A node that also trains with record-level DP-SGD (Opacus) and reports its own ε.
DP_SGD = 9


class SecureFed:
    def __init__(self, workdir, rpc_url, api_url, chain, env, data_dir, deployments_dir, procs):
        self.workdir, self.rpc_url, self.api_url, self.chain, self.env = workdir, rpc_url, api_url, chain, env
        self.data_dir, self.deployments_dir, self.procs = data_dir, deployments_dir, procs
        self.nodes: dict[int, subprocess.Popen] = {}
        self.early: dict[str, httpx.Response] = {}

    def log(self, name: str) -> str:
        p = self.workdir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start_node(self, i: int, crash: str | None, tag: str) -> None:
        extra = ["--crash-at", crash] if crash else []
        if i == RELAYED:
            extra += ["--commit-mode", "relay"]
        if i == DP_SGD:
            extra += ["--dp-sgd"]
        p = _spawn([sys.executable, "-m", "node", "--rpc-url", self.rpc_url, "--api-url", self.api_url,
                    "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", str(NODES), "--idle-exit", "20",
                    "--receipts-dir", str(self.workdir / "receipts" / f"node-{i}"), *extra],
                   self.workdir / f"node-{i}-{tag}.log", self.env)
        self.procs.append(p)
        self.nodes[i] = p

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fedchain.cli", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def report(self, rid: int) -> dict:
        info = self.chain.get_round(rid)
        return httpx.get(f"{self.api_url}/blobs/{info.report_hash}", timeout=10).json()

    def tails(self) -> str:
        out = "\n--- aggregator ---\n" + self.log("aggregator")[-4000:]
        for p in sorted(self.workdir.glob("node-*.log"))[:4]:
            out += f"\n--- {p.name} ---\n" + p.read_text(errors="replace")[-1500:]
        return out


def _closed(chain, rid: int) -> bool:
    return chain.current_round_id() >= rid and chain.get_round(rid).status in (RoundStatus.FINALIZED,
                                                                                RoundStatus.EXPIRED)


def _try_out_of_turn_uploads(fed: SecureFed) -> None:
    """While round 1 is open: a malformed (float, not masked) blob from node 10, and an unmasking
    blob before the seal. Both must be refused with a reason code, and nothing stored."""
    acct = dev_account(10)
    chain = fed.chain
    info = chain.get_round(1)
    base = decode_tensors(httpx.get(f"{fed.api_url}/blobs/{info.base_model_hash}", timeout=10).content)
    plain = encode_update(base, UpdateIdentity(chain.chain_id, chain.rounds_address, 1, acct.address))
    h = commitment(plain)
    sig = sign_upload(acct, chain.chain_id, chain.rounds_address, 1, h)
    fed.early["plaintext"] = httpx.put(f"{fed.api_url}/rounds/1/updates/{h}", content=plain, timeout=30,
                                       headers={"X-Fedchain-Signature": sig})
    body = b'{"version": "fedchain/secagg-unmask/v1"}'
    hb = commitment(body)
    fed.early["unmask_before_seal"] = httpx.put(
        f"{fed.api_url}/rounds/1/unmask/{hb}", content=body, timeout=30,
        headers={"X-Fedchain-Signature": sign_upload(acct, chain.chain_id, chain.rounds_address, 1, hb)})


@pytest.fixture(scope="module")
def secure_fed(tmp_path_factory) -> SecureFed:
    workdir = tmp_path_factory.mktemp("secure")
    dev = deploy_dev_chain(workdir, range(1, NODES + 1))
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    procs: list = [dev.anvil]
    env = dev.env
    env.update({"FEDCHAIN_RPC_URL": dev.rpc_url, "FEDCHAIN_API_URL": api_url})
    fed = SecureFed(workdir, dev.rpc_url, api_url, dev.chain, env, dev.data_dir, dev.deployments_dir, procs)
    try:
        agg = _spawn(aggregator_cmd(dev.rpc_url, api_port, dev.data_dir, dev.deployments_dir, "--rounds", "3",
                                    "--min-updates", str(THRESHOLD), "--round-seconds", str(ROUND_SECONDS),
                                    "--mode", "secure", "--unmask-window", str(UNMASK_WINDOW),
                                    "--noise-multiplier", str(NOISE), "--max-samples", "5000",
                                    "--unmask-linger", "5"),  # every live survivor posts before the merge
                     workdir / "aggregator.log", env)
        procs.append(agg)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 90, "the aggregator API")
        assert agg.poll() is None, fed.log("aggregator")
        for i in range(1, NODES):
            fed.start_node(i, CRASHES.get(i), "a")
        wait_for(lambda: fed.chain.current_round_id() >= 1, 60, "round 1 to open")
        _try_out_of_turn_uploads(fed)  # as node 10, before its own process starts
        fed.start_node(NODES, None, "a")
        for rid, crashing in ((1, (1, 2, 3)), (2, (4, 5, 6))):
            wait_for(lambda: _closed(fed.chain, rid), 240, f"round {rid} to close" + fed.tails())
            for i in crashing:  # they died in this round: restart them, as an operator would
                wait_for(lambda: fed.nodes[i].poll() is not None, 30, f"node {i} to have crashed")
                fed.start_node(i, "after-commit@3" if i in ROUND3_CRASHES else None, f"r{rid + 1}")
        wait_for(lambda: _closed(fed.chain, 3), 300, "round 3 to close" + fed.tails())
        wait_for(lambda: len(httpx.get(f"{api_url}/rounds", timeout=5).json()["items"]) >= 3, 30, "the index")
        yield fed
    finally:
        stop_all(procs)


def test_secure_round_finalizes_when_three_nodes_die_after_uploading(secure_fed):
    info = secure_fed.chain.get_round(1)
    assert info.status == RoundStatus.FINALIZED, secure_fed.tails()
    assert info.commit_count == NODES - 3 and info.accepted_count == NODES - 3
    report = secure_fed.report(1)
    assert report["mode"] == "secure"
    assert len(report["secure"]["posters"]) >= THRESHOLD
    assert report["secure"]["range"]["ok"] is True
    assert report["secure"]["excluded"] == []
    for i in (1, 2, 3):
        assert "crashing at after-upload in round 1" in secure_fed.log(f"node-{i}-a")


def test_secure_round_finalizes_with_the_inputs_of_nodes_that_die_after_committing(secure_fed):
    info = secure_fed.chain.get_round(2)
    assert info.status == RoundStatus.FINALIZED, secure_fed.tails()
    phase = secure_fed.chain.unmask_phase(2)
    assert info.accepted_count == NODES and phase.survivor_count == NODES
    assert THRESHOLD <= phase.unmask_count <= NODES - 3
    posters = {p.lower() for p in secure_fed.report(2)["secure"]["posters"]}
    assert not posters & {dev_account(i).address.lower() for i in (4, 5, 6)}


def test_secure_round_expires_when_fewer_than_t_survivors_post(secure_fed):
    info = secure_fed.chain.get_round(3)
    assert info.status == RoundStatus.EXPIRED, secure_fed.tails()
    phase = secure_fed.chain.unmask_phase(3)
    assert phase.sealed and phase.unmask_count < THRESHOLD
    assert "too_few_shares" in secure_fed.log("aggregator") or "unmask_failed" in secure_fed.log("aggregator")


@pytest.mark.parametrize("rid", [1, 2, 3])
def test_fedchain_verify_passes_on_every_secure_round(secure_fed, rid):
    r = secure_fed.cli("verify", "--round", str(rid), "--rpc-url", secure_fed.rpc_url, "--api-url",
                       secure_fed.api_url, "--deployments-dir", str(secure_fed.deployments_dir), "--dev-account", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    if rid < 3:
        assert "secure;" in r.stdout and "ε =" in r.stdout


def test_privacy_endpoint_serves_the_accountant_state_anyone_can_recompute(secure_fed):
    from fedchain.privacy.accountant import verify_state

    latest = httpx.get(f"{secure_fed.api_url}/privacy", timeout=10).json()
    assert latest["round"] == 2 and latest["mode"] == "secure"
    r1 = httpx.get(f"{secure_fed.api_url}/rounds/1/privacy", timeout=10).json()
    assert 0 < r1["epsilon"] < latest["epsilon"]
    assert verify_state(latest["state"]) == pytest.approx(latest["epsilon"])
    assert [r["round"] for r in latest["state"]["rounds"]] == [1, 2]
    missing = httpx.get(f"{secure_fed.api_url}/rounds/3/privacy", timeout=10)
    assert missing.status_code == 404 and missing.json()["reason"] == "no_report"


def test_masked_blob_the_aggregator_stores_looks_uniform(secure_fed):
    store = FilesystemStore(secure_fed.data_dir / "blobs")
    c = secure_fed.chain.commitments(1)[0]
    from fedchain.codec import decode_fixed  # noqa: F401  (the integer codec the blob uses)
    from safetensors.numpy import load

    tensors = load(store.get(c.update_hash))
    words = np.concatenate([v.ravel() for k, v in sorted(tensors.items()) if k != "secagg:shares"]).astype(np.uint64)
    # Top byte of each 32-bit word: uniform over 256 values iff masked (a plaintext update is
    # concentrated near 0x00 and 0xff, small values around zero in two's complement).
    counts = np.bincount((words >> 24).astype(np.int64), minlength=256)
    expected = len(words) / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 350, chi2  # 255 degrees of freedom: p ~ 1e-4 at 350


def test_malformed_and_out_of_turn_uploads_are_refused_with_a_reason(secure_fed):
    plain = secure_fed.early["plaintext"]
    assert plain.status_code == 422 and plain.json()["reason"] == "wrong_dtype", plain.text
    early = secure_fed.early["unmask_before_seal"]
    assert early.status_code == 409 and early.json()["reason"] == "not_sealed", early.text


def test_secure_mode_refuses_a_robust_strategy_with_the_reason(secure_fed):
    r = secure_fed.cli("aggregator", "--rpc-url", secure_fed.rpc_url, "--deployments-dir",
                       str(secure_fed.deployments_dir), "--data-dir", str(secure_fed.workdir / "other"),
                       "--port", str(free_port()), "--mode", "secure", "--strategy", "krum", "--rounds", "1",
                       "--dev-account", "0", timeout=60)
    assert r.returncode != 0
    assert "cannot run in secure mode" in (r.stdout + r.stderr) and "Traceback" not in r.stderr


def test_a_relay_mode_node_has_its_unmasking_post_relayed(secure_fed):
    log = "".join(secure_fed.log(p.stem) for p in secure_fed.workdir.glob(f"node-{RELAYED}-*.log"))
    assert "relayed by the aggregator" in log, log[-3000:]
    assert "relayed" in secure_fed.log("aggregator") and "unmasking post(s) in one batch" in secure_fed.log("aggregator")
    posters = {p.lower() for p in secure_fed.report(1)["secure"]["posters"]}
    assert dev_account(RELAYED).address.lower() in posters


def test_a_dp_sgd_node_reports_its_own_cumulative_record_level_epsilon(secure_fed):
    import re

    log = secure_fed.log(f"node-{DP_SGD}-a")
    eps = [float(x) for x in re.findall(r"DP-SGD record-level ε = ([0-9.e+]+)", log)]
    assert len(eps) >= 2 and eps == sorted(eps) and eps[-1] > eps[0] > 0, log[-2000:]
    assert (secure_fed.workdir / "receipts" / f"node-{DP_SGD}" / "dp-sgd-accountant.json").exists()
    assert secure_fed.chain.get_round(2).accepted_count == NODES  # its DP-SGD update is in the sum
