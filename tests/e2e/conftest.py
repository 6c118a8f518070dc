"""End-to-end fixtures: a real anvil, the real aggregator (uvicorn) and node processes.

One federation is shared by the module's tests (it is the expensive part):
- dev account 0: admin and aggregator (``fedchain aggregator`` subprocess, 2 rounds, quorum 2);
- dev accounts 1-3: honest nodes (``python -m node`` subprocesses, options-iv shards 0-2);
- dev account 4: a rogue node that commits a hash but never uploads (tests/e2e/rogue_node.py);
- dev account 5: an honest node that is killed (SIGKILL) as soon as round 2 opens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.deploy import deploy
from fedchain.devchain import env_with_repo, free_port, start_anvil, stop_process
from fedchain.settings import REPO_ROOT

ROUNDS = 2
ROUND_SECONDS = 45
GRACE = 2


@dataclass
class Federation:
    rpc_url: str
    api_url: str
    workdir: Path
    data_dir: Path
    deployments_dir: Path
    chain: ChainClient
    env: dict
    aggregator: subprocess.Popen
    procs: list = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fedchain.cli", *args], capture_output=True, text=True,
                              env=self.env, cwd=REPO_ROOT, timeout=timeout)

    def log(self, name: str) -> str:
        p = self.workdir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""


def _spawn(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=REPO_ROOT, start_new_session=True)


def aggregator_cmd(fed_rpc: str, port: int, data_dir: Path, deployments_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fedchain.cli", "aggregator", "--rpc-url", fed_rpc, "--port", str(port),
            "--data-dir", str(data_dir), "--deployments-dir", str(deployments_dir), "--dev-account", "0",
            "--task", "options-iv", *extra]


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5, fed: "Federation | None" = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    logs = ""
    if fed is not None:
        for name in ("aggregator", "node-1", "node-5", "rogue"):
            logs += f"\n--- {name}.log (tail) ---\n" + fed.log(name)[-3000:]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{logs}")


@pytest.fixture(scope="session")
def federation(tmp_path_factory) -> Federation:
    workdir = tmp_path_factory.mktemp("federation")
    chain_port, api_port = free_port(), free_port()
    rpc_url, api_url = f"http://127.0.0.1:{chain_port}", f"http://127.0.0.1:{api_port}"
    deployments_dir, data_dir = workdir / "deployments", workdir / "aggregator"
    anvil = start_anvil(chain_port, log_path=workdir / "anvil.log")
    procs: list[subprocess.Popen] = [anvil]
    env = env_with_repo()
    env.update({"FEDCHAIN_RPC_URL": rpc_url, "FEDCHAIN_API_URL": api_url,
                "FEDCHAIN_DEPLOYMENTS_DIR": str(deployments_dir), "FEDCHAIN_DATA_DIR": str(data_dir)})
    try:
        from fedchain.aggregator.service import genesis_model
        from fedchain.tasks import load_task

        task = load_task("options-iv")
        _, genesis = genesis_model(task, task.default_params(), 0)
        deploy(rpc_url, dev_account(0), repo_root=REPO_ROOT, deployments_dir=deployments_dir, grace_period=GRACE,
               genesis_hash=genesis, admit=[dev_account(i).address for i in range(1, 6)], log=lambda m: None)
        chain = ChainClient.connect(rpc_url, deployments_dir=deployments_dir, repo_root=REPO_ROOT)
        agg = _spawn(aggregator_cmd(rpc_url, api_port, data_dir, deployments_dir, "--rounds", str(ROUNDS),
                                    "--min-updates", "2", "--round-seconds", str(ROUND_SECONDS)),
                     workdir / "aggregator.log", env)
        procs.append(agg)
        fed = Federation(rpc_url, api_url, workdir, data_dir, deployments_dir, chain, env, agg, procs)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 90, "the aggregator API", fed=fed)
        assert agg.poll() is None, fed.log("aggregator")
        for i in (1, 2, 3, 5):
            procs.append(_spawn([sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url,
                                 "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", "5",
                                 "--rounds", str(ROUNDS)], workdir / f"node-{i}.log", env))
        crasher = procs[-1]
        procs.append(_spawn([sys.executable, str(Path(__file__).parent / "rogue_node.py"), "--rpc-url", rpc_url,
                             "--deployments-dir", str(deployments_dir), "--dev-account", "4",
                             "--rounds", str(ROUNDS)], workdir / "rogue.log", env))
        wait_for(lambda: chain.current_round_id() >= 2, 240, "round 2 to open", fed=fed)
        os.killpg(crasher.pid, signal.SIGKILL)  # node 5 dies mid-round
        wait_for(lambda: _finalized_or_expired(chain) >= ROUNDS, 240, f"{ROUNDS} rounds to close", fed=fed)
        wait_for(lambda: _indexed_rounds(api_url) >= ROUNDS, 30, "the index to catch up", fed=fed)
        yield fed
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            stop_process(p)


def _api_up(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _finalized_or_expired(chain: ChainClient) -> int:
    from fedchain.chain.types import RoundStatus

    n = 0
    for rid in range(1, chain.current_round_id() + 1):
        if chain.get_round(rid).status in (RoundStatus.FINALIZED, RoundStatus.EXPIRED):
            n += 1
    return n


def _indexed_rounds(api_url: str) -> int:
    try:
        items = httpx.get(f"{api_url}/rounds", timeout=2).json()["items"]
    except (httpx.TransportError, ValueError, KeyError):
        return 0
    return sum(1 for it in items if it["status"] != "open" and (it["status"] == "expired" or it.get("report_hash")))
