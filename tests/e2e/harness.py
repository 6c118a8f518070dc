"""End-to-end harness: a real anvil, the real aggregator (uvicorn) and node processes.

One federation is shared by the module's tests (it is the expensive part):
- dev account 0: admin and aggregator (``fedchain aggregator`` subprocess, 2 rounds, quorum 2),
  which censors node 7's relayed commitments;
- dev accounts 1-3: honest nodes (``python -m node`` subprocesses, options-iv shards 0-2);
- dev account 4: a rogue node that commits the hash of a real update but never uploads it, and
  keeps the blob (tests/e2e/hostile_node.py ``no-upload``);
- dev account 5: an honest node that is killed (SIGKILL) right after its round-1 commit;
- dev account 6: a copier that commits node 1's hash as its own (``copy``);
- dev account 7: an honest node in relay mode; censored, it falls back to a direct commit;
- dev account 8: an inflater that claims 2^64 - 1 samples, then the cap (``inflate``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import httpx

from fedchain.chain.client import ChainClient
from fedchain.settings import REPO_ROOT

ROUNDS = 2
ROUND_SECONDS = 45
GRACE = 2
MAX_SAMPLES = 5000
RELAY_CUTOFF = 15


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


@dataclass
class DevChain:
    """A fresh anvil (one block a second) with the contract deployed, the genesis model of
    options-iv set and some dev accounts admitted; ``env`` points commands at its files."""

    rpc_url: str
    anvil: subprocess.Popen
    chain: ChainClient
    deployments_dir: Path
    data_dir: Path
    env: dict


def deploy_dev_chain(workdir: Path, admit: "Iterable[int]", *, grace: int = GRACE, node: str = "anvil") -> DevChain:
    """Start anvil (or ``node="hardhat"``: Hardhat Network) and deploy; admit the dev accounts
    ``admit``. Stops the chain again if deploying fails."""
    from fedchain.aggregator.service import genesis_model
    from fedchain.chain.accounts import dev_account, secure_keys
    from fedchain.chain.deploy import deploy
    from fedchain.devchain import env_with_repo, free_port, start_anvil, start_hardhat
    from fedchain.tasks import load_task

    rpc_url = f"http://127.0.0.1:{free_port()}"
    deployments_dir, data_dir = workdir / "deployments", workdir / "aggregator"
    admit = list(admit)
    port = int(rpc_url.rsplit(":", 1)[1])
    if node == "hardhat":
        anvil = start_hardhat(port, log_path=workdir / "hardhat.log")
    else:
        anvil = start_anvil(port, accounts=max(10, max(admit, default=0) + 2), log_path=workdir / "anvil.log",
                            block_time=1)
    try:
        task = load_task("options-iv")
        _, genesis = genesis_model(task, task.default_params(), 0)
        deploy(rpc_url, dev_account(0), repo_root=REPO_ROOT, deployments_dir=deployments_dir, grace_period=grace,
               genesis_hash=genesis, admit=[(dev_account(i).address, secure_keys(dev_account(i))[1]) for i in admit], log=lambda m: None)
        chain = ChainClient.connect(rpc_url, deployments_dir=deployments_dir, repo_root=REPO_ROOT)
    except BaseException:
        stop_all([anvil])
        raise
    env = env_with_repo()
    env.update({"FEDCHAIN_DEPLOYMENTS_DIR": str(deployments_dir), "FEDCHAIN_DATA_DIR": str(data_dir)})
    return DevChain(rpc_url, anvil, chain, deployments_dir, data_dir, env)


def stop_all(procs: list) -> None:
    """Stop processes started with :func:`_spawn` (their whole process group), newest first."""
    import os
    import signal

    from fedchain.devchain import stop_process

    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        stop_process(p)


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
        for name in ("aggregator", "node-1", "node-5", "node-7", "rogue", "copier", "inflater"):
            logs += f"\n--- {name}.log (tail) ---\n" + fed.log(name)[-3000:]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{logs}")


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


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the chain's RPC port, which a test can cut and restore,
    as an RPC outage would. Connections are refused while it is cut."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self._cut = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open: set = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for s in self._open:
                try:
                    s.close()
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        self._server.close()
