"""A new user's first hour, as the README's "Run a federation yourself" does it, on ports of our own.

Only `fedchain chain --port`, `fedchain deploy --rpc-url` and `fedchain aggregator --port` name a
port: the nodes, `fedchain rounds` and `fedchain verify` find the chain and the API through the
URLs recorded in the deployment file. On the way: a second aggregator on the same data folder, and
one on the same contract, are refused naming the holder; the nodes stop by themselves once the
federation has ended (--idle-exit) with a `done:` line; `fedchain rounds` prints the aggregator's
table; SIGTERM to `fedchain chain` leaves no anvil behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from fedchain.devchain import env_with_repo, free_port, port_open
from fedchain.settings import REPO_ROOT
from harness import wait_for

ROUNDS = 2


def _table(text: str) -> list[str]:
    """The per-round rows of a `fedchain rounds` table (round, status, accepted, rejected, hash)."""
    return [" ".join(" ".join(line.split("│")[1:6]).split()) for line in text.splitlines()
            if re.match(r"^│\s+\d+ │", line)]


def test_readme_federation_on_other_ports_with_urls_from_the_deployment_file(tmp_path):
    chain_port, api_port = free_port(), free_port()
    rpc, api = f"http://127.0.0.1:{chain_port}", f"http://127.0.0.1:{api_port}"
    env = env_with_repo()
    for var in ("FEDCHAIN_RPC_URL", "FEDCHAIN_API_URL"):
        env.pop(var, None)
    env.update({"FEDCHAIN_DEPLOYMENTS_DIR": str(tmp_path / "deployments"), "FEDCHAIN_DATA_DIR": str(tmp_path / "agg"),
                "COLUMNS": "160"})
    cli = [sys.executable, "-m", "fedchain.cli"]
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, *args: str) -> subprocess.Popen:
        procs[name] = subprocess.Popen([*cli, *args], stdout=open(tmp_path / f"{name}.log", "w"),
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
        return procs[name]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")

    try:
        chain = spawn("chain", "chain", "--port", str(chain_port))
        wait_for(lambda: port_open("127.0.0.1", chain_port) or chain.poll() is not None, 30, "the chain")
        deploy = run("deploy", "--rpc-url", rpc, "--task", "options-iv", "--admit-dev", "3")
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        dep_file = tmp_path / "deployments" / "31337.json"
        assert json.loads(dep_file.read_text())["rpc_url"] == rpc

        agg = spawn("aggregator", "aggregator", "--port", str(api_port), "--rounds", str(ROUNDS), "--min-updates", "2",
                    "--round-seconds", "60")
        wait_for(lambda: "API serving" in log("aggregator") or agg.poll() is not None, 90, "the aggregator")
        assert agg.poll() is None, log("aggregator")
        assert json.loads(dep_file.read_text())["api_url"] == api

        # Trap: a second aggregator on the same data folder, then on the same contract.
        same_dir = run("aggregator", "--port", str(free_port()), "--rounds", "1")
        text = same_dir.stdout + same_dir.stderr
        assert same_dir.returncode != 0 and "in use by another aggregator" in text, text
        assert f"pid {agg.pid}" in text and "--data-dir" in text and "Traceback" not in text
        same_contract = run("aggregator", "--port", str(free_port()), "--rounds", "1", "--data-dir", str(tmp_path / "b"))
        text = same_contract.stdout + same_contract.stderr
        assert same_contract.returncode != 0 and "the contract" in text and f"pid {agg.pid}" in text, text

        # The nodes name no URL: both come from the deployment file.
        for i in (1, 2, 3):
            spawn(f"node-{i}", "node", "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", "3",
                  "--idle-exit", "8")
        wait_for(lambda: "rounds done" in log("aggregator") or agg.poll() is not None, 300, f"{ROUNDS} rounds")
        assert agg.poll() is None, log("aggregator")
        for i in (1, 2, 3):
            node = procs[f"node-{i}"]
            wait_for(lambda: node.poll() is not None, 60, f"node {i} to stop after the last round")
            out = log(f"node-{i}")
            assert node.returncode == 0, out
            assert re.search(rf"done: no round opened for 8 s after round {ROUNDS} closed.*took part in {ROUNDS} round",
                             out.replace("\n", " ")), out[-2000:]

        # `fedchain rounds` (no --api-url) prints the aggregator's table.
        rounds = run("rounds")
        assert rounds.returncode == 0, rounds.stdout + rounds.stderr
        assert api in rounds.stdout
        rows = _table(rounds.stdout)
        assert len(rows) == ROUNDS and rows == _table(log("aggregator"))[-ROUNDS:], (rounds.stdout, log("aggregator"))
        health = httpx.get(f"{api}/health", timeout=5).json()
        assert health["status"] == "ok"

        for rid in range(1, ROUNDS + 1):
            check = run("verify", "--round", str(rid), "--dev-account", "1")
            assert check.returncode == 0, check.stdout + check.stderr

        # Trap: SIGTERM to `fedchain chain` stops anvil too.
        chain.send_signal(signal.SIGTERM)
        chain.wait(20)
        end = time.monotonic() + 10
        while port_open("127.0.0.1", chain_port) and time.monotonic() < end:
            time.sleep(0.2)
        assert not port_open("127.0.0.1", chain_port), "anvil outlived `fedchain chain`"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
