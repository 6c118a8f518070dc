"""End to end: a node host that has only the wheel joins a running federation.

The wheel is built from this checkout (as ``make dist`` does), installed into a fresh venv with
``[node]`` only (torch first, ``torch==2.13.0``: the local CPU build), and its ``fedchain node``
runs from an empty temporary folder with no ``PYTHONPATH``, knowing only the RPC URL and the API
URL: the deployment (contract address, deploy block) comes from the API's ``GET /deployment`` and
is checked against the contract code on the node's own RPC, the ABI from the package. The test
also checks that this venv has no brownie, solc, FastAPI or SQLAlchemy.

The federation: anvil, ``fedchain.chain.deploy.deploy``, an aggregator subprocess from the repo
venv, one repo node plus the wheel node, one round (quorum 2, so the wheel node's update must be
accepted), then ``fedchain verify`` (from the repo, and from the wheel venv) passes.

The venv with the wheel's dependencies is cached under ``.venv/wheel-node-cache/<key>`` (key: the
wheel's [node] requirements and the Python version); creating it takes about 75 s (most of it
copying torch). Each run reinstalls the freshly built wheel into it with ``--no-deps
--force-reinstall`` and runs ``pip check``. Delete the folder to test a first install again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from fedchain.chain.accounts import dev_account
from fedchain.chain.types import RoundStatus
from fedchain.devchain import free_port
from fedchain.settings import REPO_ROOT

from harness import _api_up, _spawn, aggregator_cmd, deploy_dev_chain, stop_all, wait_for

CACHE = REPO_ROOT / ".venv" / "wheel-node-cache"
PYTHON = shutil.which("python3.11") or sys.executable
ROUND_SECONDS = 90


def _run(cmd: list[str], *, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _clean_env(venv: Path, cwd: Path) -> dict[str, str]:
    """No PYTHONPATH, no FEDCHAIN_* (no deployments folder, no data folder): what a fresh host has."""
    return {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8",
            **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}


def _build_wheel(out_dir: Path) -> Path:
    src = out_dir / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    for pkg in ("fedchain", "node"):
        shutil.copytree(REPO_ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir",
          str(out_dir), str(src)], timeout=300)
    (wheel,) = out_dir.glob("fedchain-*.whl")
    return wheel


def _node_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return sorted(line for line in lines if line.startswith("Requires-Dist:") and 'extra == "node"' in line)


def _node_venv(wheel: Path, tmp: Path) -> Path:
    """A venv holding the wheel's [node] dependencies (cached) and this wheel (always reinstalled)."""
    version = subprocess.run([PYTHON, "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout
    key = hashlib.sha256(("\n".join(_node_requirements(wheel)) + version).encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / key
    env = _clean_env(venv, tmp)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never build one venv at once
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _run([PYTHON, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            _run([*pip, "torch==2.13.0"], env=env, cwd=tmp)  # exactly this spec: the CPU build
            _run([*pip, f"{wheel}[node]"], env=env, cwd=tmp)
            (venv / ".complete").write_text(key)
        else:
            _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                  str(wheel)], env=env, cwd=tmp)
    _run([str(venv / "bin" / "python"), "-m", "pip", "check"], env=env, cwd=tmp)
    return venv


@pytest.fixture(scope="module")
def wheel_federation(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wheel-node")
    host = workdir / "host"  # the node host's empty working folder
    host.mkdir()
    started = time.monotonic()
    wheel = _build_wheel(workdir / "dist")
    venv = _node_venv(wheel, host)
    install_seconds = time.monotonic() - started

    dev = deploy_dev_chain(workdir, (1, 2))
    rpc_url, chain, deployments, data, env = dev.rpc_url, dev.chain, dev.deployments_dir, dev.data_dir, dev.env
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    procs = [dev.anvil]
    try:
        agg = _spawn(aggregator_cmd(rpc_url, api_port, data, deployments, "--rounds", "1", "--min-updates", "2",
                                    "--round-seconds", str(ROUND_SECONDS)), workdir / "aggregator.log", env)
        procs.append(agg)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 90, "the aggregator API")
        assert agg.poll() is None, (workdir / "aggregator.log").read_text()[-3000:]
        repo_node = _spawn([sys.executable, "-m", "node", "--rpc-url", rpc_url, "--api-url", api_url,
                            "--dev-account", "1", "--shard", "0", "--num-shards", "2", "--rounds", "1",
                            "--receipts-dir", str(workdir / "receipts-1")], workdir / "node-1.log", env)
        procs.append(repo_node)
        wheel_log = workdir / "wheel-node.log"
        wheel_node = subprocess.Popen(
            [str(venv / "bin" / "fedchain"), "node", "--rpc-url", rpc_url, "--api-url", api_url,
             "--dev-account", "2", "--shard", "1", "--num-shards", "2", "--rounds", "1"],
            stdout=open(wheel_log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_clean_env(venv, host), cwd=host, start_new_session=True)
        procs.append(wheel_node)
        for name, p in (("wheel-node", wheel_node), ("node-1", repo_node)):
            try:
                code = p.wait(ROUND_SECONDS + 150)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0, f"{name} exited with {code}:\n" + (workdir / f"{name}.log").read_text()[-4000:] + \
                "\n--- aggregator ---\n" + (workdir / "aggregator.log").read_text()[-3000:]
        wait_for(lambda: chain.get_round(1).status == RoundStatus.FINALIZED, 60, "round 1 to finalize")
        yield {"rpc_url": rpc_url, "api_url": api_url, "env": env, "chain": chain, "venv": venv, "host": host,
               "workdir": workdir, "wheel": wheel, "install_seconds": install_seconds}
    finally:
        stop_all(procs)


def test_the_wheel_venv_has_no_contract_or_aggregator_tool_chain(wheel_federation):
    venv, host = wheel_federation["venv"], wheel_federation["host"]
    probe = ("import importlib.util as u, sys\n"
             "print(','.join(m for m in ('brownie', 'solcx', 'fastapi', 'sqlalchemy', 'uvicorn') if u.find_spec(m)))\n"
             "import fedchain, fedchain.chain.client as c\n"
             "print(fedchain.__file__)\n"
             "print(len(c.packaged_abi('TrainingRounds')))\n")
    out = _run([str(venv / "bin" / "python"), "-c", probe], env=_clean_env(venv, host), cwd=host)
    present, location, abi_items = out.stdout.splitlines()
    assert present == "", f"the node venv has {present}"
    assert location.startswith(str(venv)), location  # the installed wheel, not the checkout
    assert int(abi_items) > 0
    failed = subprocess.run([str(venv / "bin" / "python"), "-c", "import brownie"], capture_output=True, text=True,
                            env=_clean_env(venv, host), cwd=host)
    assert failed.returncode != 0 and "ModuleNotFoundError" in failed.stderr
    assert not list(host.glob("deployments*")), "the node host had or wrote a deployments file"


def test_the_wheel_node_took_part_and_its_update_was_accepted(wheel_federation):
    chain = wheel_federation["chain"]
    info = chain.get_round(1)
    assert info.status == RoundStatus.FINALIZED
    assert chain.get_commitment(1, dev_account(2).address) is not None
    report = httpx.get(f"{wheel_federation['api_url']}/blobs/{info.report_hash}", timeout=10).json()
    by_node = {u["node"].lower(): u for u in report["updates"]}
    assert by_node[dev_account(2).address.lower()]["accepted"], report
    assert by_node[dev_account(1).address.lower()]["accepted"], report
    # the deployment the node used came from the API and names the deployed contract
    served = httpx.get(f"{wheel_federation['api_url']}/deployment", timeout=10).json()
    assert served["contracts"]["TrainingRounds"]["address"].lower() == chain.rounds_address.lower()


def test_verify_passes_from_the_repo_and_from_the_wheel(wheel_federation):
    fed = wheel_federation
    args = ["verify", "--round", "1", "--rpc-url", fed["rpc_url"], "--api-url", fed["api_url"], "--dev-account", "1"]
    out = subprocess.run([sys.executable, "-m", "fedchain.cli", *args], capture_output=True, text=True,
                         env=fed["env"], cwd=REPO_ROOT, timeout=180)
    assert out.returncode == 0 and "verified" in out.stdout, out.stdout + out.stderr
    # verify takes no contract address from the API it audits: the auditor names it (--contract)
    out = subprocess.run([str(fed["venv"] / "bin" / "fedchain"), *args, "--contract", fed["chain"].rounds_address],
                         capture_output=True, text=True,
                         env=_clean_env(fed["venv"], fed["host"]), cwd=fed["host"], timeout=180)
    assert out.returncode == 0 and "verified" in out.stdout, out.stdout + out.stderr
