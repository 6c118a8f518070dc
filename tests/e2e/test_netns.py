"""Nodes on other hosts: the chain and the aggregator in one network namespace, each node in a
namespace of its own, linked by veth pairs with addresses this test assigns.

Nothing can rely on localhost or on shared files: inside a node's namespace 127.0.0.1 is that
node's own loopback, where nothing listens; each node has its own working folder, home and an
empty deployments folder, and gets only the API URL and the RPC URL (the contract address comes
from the API's ``/deployment``, checked against the chain). The namespaces have no default route,
so no traffic can leave the machine: a node can reach only the aggregator's namespace, and the
test itself (in the root namespace, as the operator) reaches it over one more veth pair. The
namespaces, and with them every veth, are deleted afterwards. Without root or ``ip netns`` the
test skips, saying why.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from fedchain.devchain import env_with_repo, stop_processes
from harness import wait_for

NODES = 3
ROUNDS = 2
RPC_PORT, API_PORT = 8545, 8000
#: The observer link (root namespace <-> aggregator namespace) uses this third octet.
OBSERVER = 250


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _free_prefix() -> str:
    """A 10.x.0.0/16 that no interface or route of this machine uses."""
    used = []
    for cmd in (["-4", "-o", "addr", "show"], ["-4", "route", "show", "table", "all"]):
        for word in _ip(*cmd, check=False).stdout.split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    for second in range(231, 255):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return f"10.{second}"
    pytest.skip("no free 10.x.0.0/16 for the test's namespaces")


class Namespaces:
    """The test's namespaces and links; ``close`` deletes them all (and so every veth in them)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.names: list[str] = []
        self.root_links: list[str] = []

    def add(self, name: str) -> str:
        full = f"{self.tag}-{name}"
        _ip("netns", "add", full)
        self.names.append(full)
        _ip("-n", full, "link", "set", "lo", "up")
        return full

    def link(self, a: str | None, a_addr: str, b: str, b_addr: str, name: str) -> None:
        """A veth pair between namespace ``a`` (None: the root namespace) and ``b``."""
        left, right = f"{name}a", f"{name}b"
        _ip("link", "add", left, "type", "veth", "peer", "name", right)
        if a is None:
            self.root_links.append(left)
        else:
            _ip("link", "set", left, "netns", a)
        _ip("link", "set", right, "netns", b)
        for ns, dev, addr in ((a, left, a_addr), (b, right, b_addr)):
            prefix = ["-n", ns] if ns else []
            _ip(*prefix, "addr", "add", addr, "dev", dev)
            _ip(*prefix, "link", "set", dev, "up")

    def close(self) -> None:
        for name in reversed(self.names):
            _ip("netns", "del", name, check=False)
        for link in self.root_links:  # gone with its peer's namespace; make sure
            _ip("link", "del", link, check=False)


@pytest.fixture
def namespaces():
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need Linux, root and iproute2 (`ip netns`)")
    tag = f"fc{os.getpid() % 100000}"
    probe = _ip("netns", "add", f"{tag}-probe", check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    _ip("netns", "del", f"{tag}-probe", check=False)
    ns = Namespaces(tag)
    try:
        yield ns
    finally:
        ns.close()
    leftover = _ip("netns", "list", check=False).stdout
    assert tag not in leftover, f"namespaces left behind: {leftover}"


def test_nodes_in_their_own_namespaces_train_through_veth_links_only(namespaces, tmp_path):
    net = _free_prefix()
    agg_ns = namespaces.add("agg")
    node_ns = [namespaces.add(f"n{i}") for i in range(1, NODES + 1)]
    for i, ns in enumerate(node_ns, start=1):
        namespaces.link(agg_ns, f"{net}.{i}.1/24", ns, f"{net}.{i}.2/24", f"{namespaces.tag}n{i}")
    observer = f"{net}.{OBSERVER}"
    namespaces.link(None, f"{observer}.2/24", agg_ns, f"{observer}.1/24", f"{namespaces.tag}o")
    # the test's own view of the aggregator's services (nothing else is reachable)
    rpc, api = f"http://{observer}.1:{RPC_PORT}", f"http://{observer}.1:{API_PORT}"

    base_env = env_with_repo()
    for var in [v for v in base_env if v.startswith("FEDCHAIN_")]:
        base_env.pop(var)
    agg_dir = tmp_path / "aggregator-host"
    agg_dir.mkdir()
    agg_env = {**base_env, "HOME": str(agg_dir), "FEDCHAIN_DEPLOYMENTS_DIR": str(agg_dir / "deployments"),
               "FEDCHAIN_DATA_DIR": str(agg_dir / "data"), "COLUMNS": "160"}
    cli = [sys.executable, "-m", "fedchain.cli"]
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, ns: str, args: list[str], env: dict[str, str], cwd) -> subprocess.Popen:
        procs[name] = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=open(tmp_path / f"{name}.log", "w"),
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        return procs[name]

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")

    def up(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        spawn("chain", agg_ns, [*cli, "chain", "--host", "0.0.0.0", "--port", str(RPC_PORT), "--accounts", "10"],
              agg_env, agg_dir)
        wait_for(lambda: up(rpc) or procs["chain"].poll() is not None, 60, "the chain, seen across the veth link")
        assert procs["chain"].poll() is None, log("chain")
        deploy = subprocess.run(["ip", "netns", "exec", agg_ns, *cli, "deploy", "--rpc-url",
                                 f"http://127.0.0.1:{RPC_PORT}", "--task", "options-iv", "--admit-dev", str(NODES)],
                                capture_output=True, text=True, env=agg_env, cwd=agg_dir, timeout=180)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        contract = json.loads((agg_dir / "deployments" / "31337.json").read_text())["contracts"]["TrainingRounds"]["address"]
        spawn("aggregator", agg_ns, [*cli, "aggregator", "--rpc-url", f"http://127.0.0.1:{RPC_PORT}", "--host",
                                     "0.0.0.0", "--port", str(API_PORT), "--rounds", str(ROUNDS), "--min-updates",
                                     str(NODES), "--round-seconds", "120"], agg_env, agg_dir)
        wait_for(lambda: up(f"{api}/health") or procs["aggregator"].poll() is not None, 120, "the aggregator API")
        assert procs["aggregator"].poll() is None, log("aggregator")

        for i, ns in enumerate(node_ns, start=1):
            home = tmp_path / f"node-host-{i}"
            (home / "deployments").mkdir(parents=True)
            env = {**base_env, "HOME": str(home), "FEDCHAIN_DEPLOYMENTS_DIR": str(home / "deployments")}
            gateway = f"{net}.{i}.1"  # the aggregator's address on this node's own link
            spawn(f"node-{i}", ns, [sys.executable, "-m", "node", "--rpc-url", f"http://{gateway}:{RPC_PORT}",
                                    "--api-url", f"http://{gateway}:{API_PORT}", "--dev-account", str(i), "--shard",
                                    str(i - 1), "--num-shards", str(NODES), "--rounds", str(ROUNDS),
                                    "--receipts-dir", str(home / "receipts")], env, home)

        def finalized() -> int:
            try:
                items = httpx.get(f"{api}/rounds", timeout=5).json()["items"]
            except (httpx.HTTPError, ValueError, KeyError):
                return 0
            return sum(r["status"] == "finalized" for r in items)

        wait_for(lambda: finalized() >= ROUNDS or any(p.poll() not in (None, 0) for p in procs.values()), 400,
                 f"{ROUNDS} rounds finalized across the namespaces")
        assert finalized() >= ROUNDS, {n: log(n)[-1500:] for n in procs}
        for rid in range(1, ROUNDS + 1):
            body = httpx.get(f"{api}/rounds/{rid}", timeout=5).json()
            assert body["status"] == "finalized" and len([u for u in body["updates"] if u["accepted"]]) == NODES, body
        for i in range(1, NODES + 1):
            node = procs[f"node-{i}"]
            wait_for(lambda: node.poll() is not None, 120, f"node {i} to finish its rounds")
            out = log(f"node-{i}")
            assert node.returncode == 0 and "Traceback" not in out, out[-3000:]
            assert f"took part in {ROUNDS} round(s)" in out
            assert "following the aggregator's round events" in out  # the push crossed the link too
            # the node found the contract through the API, with nothing on its own disk to go by
            assert list((tmp_path / f"node-host-{i}" / "deployments").iterdir()) == []

        # An auditor outside the federation's namespaces recomputes the last round bit-exactly.
        audit = subprocess.run([*cli, "verify", "--round", str(ROUNDS), "--rpc-url", rpc, "--api-url", api,
                                "--contract", contract, "--dev-account", "1"],
                               capture_output=True, text=True, env={**base_env, "HOME": str(tmp_path)},
                               cwd=tmp_path, timeout=180)
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        stop_processes(list(procs.values()), timeout=20)
