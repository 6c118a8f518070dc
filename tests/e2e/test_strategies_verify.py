"""End to end: every strategy family recomputes bit-exactly under ``fedchain verify``.

A small federation (real anvil, real node processes). The aggregator is restarted between rounds
with another strategy, on the same store, so one run covers a mean (fedavg with a cosine schedule),
an order statistic (trimmed mean, with bucketing in front: its permutation comes from the round
seed), a distance rule (multi-Krum, with norm clipping in front) and a stateful server optimiser (FedAdam, twice in a row: the second round must start from
the state the first left, as committed in its config).
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from fedchain.chain.types import RoundStatus
from fedchain.codec import decode_json
from fedchain.devchain import free_port
from fedchain.settings import REPO_ROOT

from harness import _api_up, _spawn, aggregator_cmd, deploy_dev_chain, stop_all, wait_for

NODES = 5  # Krum needs n > 2f + 2
PLAN = [
    ("fedavg", ["--lr-schedule", "cosine:5"]),
    ("trimmed_mean", ["--strategy-param", "beta=0.25", "--strategy-param", 'pre=[{"name": "bucketing", "s": 2}]']),
    ("multi_krum", ["--strategy-param", "f=1", "--strategy-param", "m=3",
                    "--strategy-param", 'pre=[{"name": "clip", "c": 10.0}]']),
    ("fedadam", ["--strategy-param", "server_lr=0.05"]),
    ("fedadam", ["--strategy-param", "server_lr=0.05"]),
]


@pytest.fixture(scope="module")
def strategy_rounds(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("strategies")
    dev = deploy_dev_chain(workdir, range(1, NODES + 1))
    rpc_url, chain, deployments, data, env = dev.rpc_url, dev.chain, dev.deployments_dir, dev.data_dir, dev.env
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    procs = [dev.anvil]
    try:
        for i in range(1, NODES + 1):
            procs.append(_spawn([sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url,
                                 "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", str(NODES),
                                 "--rounds", str(len(PLAN)), "--receipts-dir", str(workdir / f"receipts-{i}")],
                                workdir / f"node-{i}.log", env))
        for rid, (name, extra) in enumerate(PLAN, start=1):
            log = workdir / f"aggregator-{rid}.log"
            agg = _spawn(aggregator_cmd(rpc_url, api_port, data, deployments, "--rounds", "1", "--min-updates", "3",
                                        "--round-seconds", "90", "--strategy", name, *extra, "--exit-when-done"),
                         log, env)
            procs.append(agg)
            try:
                assert agg.wait(240) == 0, log.read_text()[-3000:]
            except subprocess.TimeoutExpired:
                raise AssertionError(f"round {rid} ({name}) did not finish:\n{log.read_text()[-3000:]}")
            assert chain.get_round(rid).status == RoundStatus.FINALIZED, log.read_text()[-3000:]
        # Serve the history for the audits (no more rounds).
        agg = _spawn(aggregator_cmd(rpc_url, api_port, data, deployments, "--rounds", "0"),
                     workdir / "aggregator-serve.log", env)
        procs.append(agg)
        wait_for(lambda: _api_up(api_url), 60, "the API")
        yield {"rpc_url": rpc_url, "api_url": api_url, "env": env, "chain": chain, "workdir": workdir}
    finally:
        stop_all(procs)


def _verify(fed, rid: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedchain.cli", "verify", "--round", str(rid), "--rpc-url",
                           fed["rpc_url"], "--api-url", fed["api_url"], "--dev-account", "1"],
                          capture_output=True, text=True, env=fed["env"], cwd=REPO_ROOT, timeout=180)


@pytest.mark.parametrize("rid", range(1, len(PLAN) + 1), ids=[f"{i + 1}-{n}" for i, (n, _) in enumerate(PLAN)])
def test_every_strategy_family_recomputes_bit_exactly(strategy_rounds, rid):
    info = strategy_rounds["chain"].get_round(rid)
    config = decode_json(httpx.get(f"{strategy_rounds['api_url']}/blobs/{info.config_hash}", timeout=10).content,
                         max_bytes=1 << 20)
    assert config["strategy"]["name"] == PLAN[rid - 1][0]
    out = _verify(strategy_rounds, rid)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified" in out.stdout


def test_server_optimiser_state_chains_from_round_to_round(strategy_rounds):
    api, chain = strategy_rounds["api_url"], strategy_rounds["chain"]

    def blob(h):
        return decode_json(httpx.get(f"{api}/blobs/{h}", timeout=10).content, max_bytes=1 << 20)

    first, second = (blob(chain.get_round(r).report_hash) for r in (4, 5))
    assert first["server_state_hash"] and second["server_state_hash"]
    assert "state_hash" not in blob(chain.get_round(4).config_hash)["strategy"]  # its first round: no state
    assert blob(chain.get_round(5).config_hash)["strategy"]["state_hash"] == first["server_state_hash"]
    assert second["server_state_hash"] != first["server_state_hash"]


def test_learning_rate_schedule_is_committed_in_the_config(strategy_rounds):
    info = strategy_rounds["chain"].get_round(1)
    config = decode_json(httpx.get(f"{strategy_rounds['api_url']}/blobs/{info.config_hash}", timeout=10).content,
                         max_bytes=1 << 20)
    assert config["training"]["lr_schedule"] == {"kind": "cosine", "rounds": 5}
