"""A local anvil chain: find the binary npm installed, start it, wait until it answers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fedchain.errors import ConfigError, RpcUnavailable
from fedchain.settings import REPO_ROOT

DEV_CHAIN_ID = 31337


def anvil_binary() -> str:
    """The native anvil from npm's @foundry-rs/anvil-<os>-<arch> (linked into .venv/bin by make install)."""
    candidates = [Path(sys.prefix) / "bin" / "anvil", REPO_ROOT / ".venv" / "bin" / "anvil"]
    for c in candidates:
        if c.exists():
            return str(c)
    node = shutil.which("node")
    if node:
        out = subprocess.run([node, str(REPO_ROOT / "tools" / "link_anvil.js")], capture_output=True, text=True)
        if out.returncode == 0 and Path(out.stdout.strip()).exists():
            return out.stdout.strip()
    found = shutil.which("anvil")
    if found:
        return found
    raise ConfigError("anvil not found", hint="run `make install` (installs @foundry-rs/anvil from npm)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def anvil_command(port: int, host: str = "127.0.0.1", accounts: int = 10, block_time: float | None = None,
                  chain_id: int = DEV_CHAIN_ID, quiet: bool = True) -> list[str]:
    cmd = [anvil_binary(), "--host", host, "--port", str(port), "--accounts", str(accounts),
           "--chain-id", str(chain_id)]
    if block_time:
        cmd += ["--block-time", str(block_time), "--mixed-mining"]
    if quiet:
        cmd.append("--silent")
    return cmd


HARDHAT_DIR = REPO_ROOT / "tools" / "hardhat"


def start_hardhat(port: int, *, host: str = "127.0.0.1", log_path: Path | None = None,
                  timeout: float = 60.0) -> subprocess.Popen:
    """Start Hardhat Network (tools/hardhat, installed by `make hardhat`) and return once it answers:
    chain id 31337, the dev mnemonic's accounts, a block per transaction and one every second."""
    binary = HARDHAT_DIR / "node_modules" / ".bin" / "hardhat"
    if not binary.exists():
        raise ConfigError("Hardhat is not installed", hint="run `make hardhat`")
    if port_open(host, port):
        raise ConfigError(f"port {port} is already in use", hint="stop the other chain or pick another port")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", DO_NOT_TRACK="1")
    proc = subprocess.Popen([str(binary), "node", "--hostname", host, "--port", str(port)], cwd=HARDHAT_DIR,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True, preexec_fn=die_with_parent)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise ConfigError(f"hardhat exited with code {proc.returncode}", hint=f"see {log_path}" if log_path else None)
        if port_open(host, port):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise ConfigError(f"hardhat did not answer on port {port} within {timeout:.0f} s")


def start_anvil(port: int, *, host: str = "127.0.0.1", accounts: int = 10, log_path: Path | None = None,
                timeout: float = 20.0, block_time: float | None = None) -> subprocess.Popen:
    """Start anvil in the background and return once it answers JSON-RPC."""
    if port_open(host, port):
        raise ConfigError(f"port {port} is already in use", hint="stop the other chain or pick another --port")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(anvil_command(port, host, accounts, block_time), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise ConfigError(f"anvil exited with code {proc.returncode}", hint=f"see {log_path}" if log_path else None)
        if port_open(host, port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RpcUnavailable(f"http://{host}:{port}", "anvil did not start in time")


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive us: on Linux the kernel sends it SIGTERM
    when the parent dies, however it dies (elsewhere this does nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def stop_processes(procs: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """Stop ``procs`` together: SIGTERM to all, one shared wait, then SIGKILL to any still running
    (stopping 20 nodes one after another took over a minute)."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.terminate()
    end = time.monotonic() + timeout
    for p in alive:
        try:
            p.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)


def env_with_repo() -> dict[str, str]:
    """Environment for child Python processes: the repo importable, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env
