"""End to end on a second, independent EVM node: Hardhat Network (tools/hardhat, `make hardhat`)
instead of anvil, so nothing depends on one node's quirks (its error shapes, its mining).

One federation: the real aggregator (uvicorn) in secure mode, three real node processes (one in
relay mode: its commitment and its unmasking post go through submitBatch / submitUnmaskBatch),
two rounds; then `fedchain verify` of both, and the contract's named errors decoded from
Hardhat's nested error objects (it answers a mined, reverted transaction with an error, where
anvil returns a receipt with status 0)."""

from __future__ import annotations

import sys

import httpx
import pytest

from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundStatus
from fedchain.devchain import free_port
from fedchain.errors import ContractRevert
from fedchain.settings import REPO_ROOT

from harness import _api_up, _spawn, aggregator_cmd, deploy_dev_chain, stop_all, wait_for

ROUNDS = 2


@pytest.fixture(scope="module")
def hardhat_fed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hardhat")
    dev = deploy_dev_chain(workdir, (1, 2, 3), node="hardhat")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env = dev.env
    env.update({"FEDCHAIN_RPC_URL": dev.rpc_url, "FEDCHAIN_API_URL": api_url})
    procs = [dev.anvil]
    try:
        agg = _spawn(aggregator_cmd(dev.rpc_url, port, dev.data_dir, dev.deployments_dir, "--rounds", str(ROUNDS),
                                    "--min-updates", "3", "--round-seconds", "60", "--mode", "secure",
                                    "--unmask-window", "15", "--noise-multiplier", "0.01", "--unmask-linger", "5"),
                     workdir / "aggregator.log", env)
        procs.append(agg)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 90, "the aggregator API")
        for i in (1, 2, 3):
            mode = ["--commit-mode", "relay"] if i == 3 else []
            procs.append(_spawn([sys.executable, "-m", "node", "--rpc-url", dev.rpc_url, "--api-url", api_url,
                                 "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", "3",
                                 "--rounds", str(ROUNDS), *mode], workdir / f"node-{i}.log", env))

        def closed() -> bool:
            return dev.chain.current_round_id() >= ROUNDS and all(
                dev.chain.get_round(r).status != RoundStatus.OPEN for r in range(1, ROUNDS + 1))

        wait_for(closed, 300, "the rounds to close on hardhat\n" + str(workdir))
        yield dev, api_url, workdir
    finally:
        stop_all(procs)


def test_secure_rounds_finalize_on_hardhat_with_a_relayed_node(hardhat_fed):
    dev, api_url, workdir = hardhat_fed
    for rid in range(1, ROUNDS + 1):
        info = dev.chain.get_round(rid)
        assert info.status == RoundStatus.FINALIZED, (workdir / "aggregator.log").read_text()[-3000:]
        assert info.accepted_count == 3 and dev.chain.unmask_phase(rid).unmask_count == 3  # every survivor (linger 5 s)
    log = (workdir / "node-3.log").read_text()
    assert "relayed by the aggregator" in log
    assert httpx.get(f"{api_url}/privacy", timeout=10).json()["epsilon"] > 0


@pytest.mark.parametrize("rid", range(1, ROUNDS + 1))
def test_fedchain_verify_passes_on_hardhat(hardhat_fed, rid):
    import subprocess

    dev, api_url, _ = hardhat_fed
    r = subprocess.run([sys.executable, "-m", "fedchain.cli", "verify", "--round", str(rid), "--rpc-url", dev.rpc_url,
                        "--api-url", api_url, "--deployments-dir", str(dev.deployments_dir), "--dev-account", "1"],
                       capture_output=True, text=True, env=dev.env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr


def test_contract_errors_are_decoded_from_hardhats_error_objects(hardhat_fed):
    dev, _, _ = hardhat_fed
    node = ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                               account=dev_account(1))
    with pytest.raises(ContractRevert) as exc:  # estimate fails: the error's data is nested
        node.submit_update(ROUNDS, "0x" + "11" * 32, 5)
    assert exc.value.name == "RoundNotOpen" and exc.value.args_dict == {"roundId": ROUNDS}
    with pytest.raises(ContractRevert) as exc:  # sent without an estimate: mined, reverted, answered with an error
        node.expire_round(ROUNDS)
    assert exc.value.name == "RoundNotOpen"
    with pytest.raises(ContractRevert) as exc:  # also sent without an estimate (it may precede the block it needs)
        node.seal_commitments(ROUNDS, [], 0)
    assert exc.value.name == "AccessControlUnauthorizedAccount"
