"""End-to-end fixtures; see harness.py for the federation they start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fedchain.chain.accounts import dev_account
from fedchain.devchain import free_port
from harness import (
    MAX_SAMPLES, RELAY_CUTOFF, ROUND_SECONDS, ROUNDS, Federation, deploy_dev_chain, stop_all, _api_up, _finalized_or_expired, _indexed_rounds, _spawn,
    aggregator_cmd, wait_for,
)


@pytest.fixture(scope="session")
def federation(tmp_path_factory) -> Federation:
    workdir = tmp_path_factory.mktemp("federation")
    dev = deploy_dev_chain(workdir, range(1, 9))
    rpc_url, chain, deployments_dir, data_dir = dev.rpc_url, dev.chain, dev.deployments_dir, dev.data_dir
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    procs: list[subprocess.Popen] = [dev.anvil]
    env = dev.env
    env.update({"FEDCHAIN_RPC_URL": rpc_url, "FEDCHAIN_API_URL": api_url})
    try:
        # The aggregator censors node 7's relayed commitments (a misbehaviour the fallback defeats).
        agg = _spawn(aggregator_cmd(rpc_url, api_port, data_dir, deployments_dir, "--rounds", str(ROUNDS),
                                    "--min-updates", "2", "--round-seconds", str(ROUND_SECONDS),
                                    "--max-samples", str(MAX_SAMPLES), "--relay-cutoff", str(RELAY_CUTOFF),
                                    "--censor", dev_account(7).address),
                     workdir / "aggregator.log", env)
        procs.append(agg)
        fed = Federation(rpc_url, api_url, workdir, data_dir, deployments_dir, chain, env, agg, procs)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 90, "the aggregator API", fed=fed)
        assert agg.poll() is None, fed.log("aggregator")
        for i in (1, 2, 3, 7, 5):
            mode = ["--commit-mode", "relay"] if i == 7 else []
            procs.append(_spawn([sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url,
                                 "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", "8",
                                 "--rounds", str(ROUNDS), "--receipts-dir", str(workdir / "receipts" / f"node-{i}"),
                                 *mode], workdir / f"node-{i}.log", env))
        crasher = procs[-1]
        hostile = [sys.executable, str(Path(__file__).parent / "hostile_node.py"), "--rpc-url", rpc_url,
                   "--api-url", api_url, "--deployments-dir", str(deployments_dir), "--rounds", str(ROUNDS)]
        for i, behaviour, name in ((4, ["no-upload", "--out-dir", str(workdir / "withheld")], "rogue"),
                                   (6, ["copy", "--victim", dev_account(1).address], "copier"),
                                   (8, ["inflate"], "inflater")):
            procs.append(_spawn([*hostile, "--dev-account", str(i), "--behaviour", *behaviour],
                                workdir / f"{name}.log", env))
        # Node 5 dies (SIGKILL) right after its round-1 commit: it stays an active node but never
        # answers again, so round 2 can only close at its deadline, with the quorum of the others.
        crasher_address = dev_account(5).address
        wait_for(lambda: chain.current_round_id() >= 1 and chain.get_commitment(1, crasher_address) is not None,
                 240, "node 5 to commit in round 1", poll=0.1, fed=fed)
        os.killpg(crasher.pid, signal.SIGKILL)
        wait_for(lambda: _finalized_or_expired(chain) >= ROUNDS, 240, f"{ROUNDS} rounds to close", fed=fed)
        wait_for(lambda: _indexed_rounds(api_url) >= ROUNDS, 30, "the index to catch up", fed=fed)
        yield fed
    finally:
        stop_all(procs)


