"""A dead RPC when a command starts: one clear line naming the URL and `fedchain chain`, exit != 0."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fedchain.devchain import env_with_repo, free_port
from fedchain.settings import REPO_ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["node", "--dev-account", "1", "--retry-seconds", "2"],
        ["aggregator", "--rounds", "1"],
        ["deploy"],
        ["verify", "--round", "1"],
        ["admit", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
    ],
    ids=lambda c: c[0],
)
def test_command_reports_dead_rpc_without_traceback(command, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = env_with_repo()
    env["FEDCHAIN_DEPLOYMENTS_DIR"] = str(tmp_path)
    env["FEDCHAIN_DATA_DIR"] = str(tmp_path / "data")
    out = subprocess.run([sys.executable, "-m", "fedchain.cli", *command, "--rpc-url", url],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"cannot reach the chain at {url}" in text
    assert "fedchain chain" in text
    assert "Traceback" not in text


def test_rounds_reports_dead_api_without_traceback():
    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "fedchain.cli", "rounds", "--api-url", url],  # retries 5 s
                         capture_output=True, text=True, env=env_with_repo(), cwd=REPO_ROOT, timeout=60)
    assert out.returncode != 0
    assert f"cannot reach the API at {url}" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_new_key_writes_an_encrypted_keystore_a_node_can_load(tmp_path):
    from fedchain.chain.accounts import from_keystore

    env = env_with_repo()
    env["FEDCHAIN_KEYSTORE_PASSWORD"] = "correct horse"
    path = tmp_path / "node.json"
    out = subprocess.run([sys.executable, "-m", "fedchain.cli", "new-key", str(path)],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    account = from_keystore(path, "correct horse")
    assert account.address in out.stdout and "fedchain admit" in out.stdout
    assert oct(path.stat().st_mode)[-3:] == "600"
    again = subprocess.run([sys.executable, "-m", "fedchain.cli", "new-key", str(path)],
                           capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr
    assert from_keystore(path, "correct horse").address == account.address  # never overwritten


@pytest.mark.parametrize("argv,message", [
    (["--nodes", "0"], "argument --nodes: must be at least 1, got 0"),
    (["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),  # the demo; the aggregator takes 0
    (["--nodes", "2", "--min-updates", "3"], "--min-updates must be in 1..2"),
    (["--close-window", "5"], "the close window (5 s) must exceed the relay cut-off (5 s)"),
    (["--close-window", "-1"], "argument --close-window"),
], ids=["nodes-0", "rounds-0", "quorum-above-nodes", "close-window-not-above-cutoff", "close-window-negative"])
def test_demo_refuses_bad_counts_before_starting_anything(argv, message, tmp_path):
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "fedchain.cli", "demo", *argv, "--workdir", str(tmp_path / "demo")],
                         capture_output=True, text=True, env=env_with_repo(), cwd=REPO_ROOT, timeout=60)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0 and message in text, text
    assert time.monotonic() - started < 10 and "Traceback" not in text
    assert not (tmp_path / "demo").exists()  # no anvil, no workdir: refused first
