"""End to end: hostile node processes (an omniscient-style attack, run for real) against a robust
rule on a real chain; every round still recomputes bit-exactly under ``fedchain verify``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from fedchain.devchain import env_with_repo
from fedchain.settings import REPO_ROOT


def test_demo_with_alie_nodes_and_centered_clipping_verifies_every_round(tmp_path):
    summary_path = tmp_path / "summary.json"
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli", "demo", "--nodes", "6", "--byzantine", "2", "--attack", "alie",
         "--strategy", "centered_clip", "--rounds", "2", "--json", str(summary_path), "--workdir",
         str(tmp_path / "demo"), "--serve"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_with_repo(), cwd=REPO_ROOT,
    )
    try:
        end = time.monotonic() + 400
        while not summary_path.exists():
            assert demo.poll() is None, demo.stdout.read() if demo.stdout else ""
            assert time.monotonic() < end, "the demo did not finish its rounds"
            time.sleep(1)
        summary = json.loads(summary_path.read_text())
        assert [r["status"] for r in summary["rounds"]] == ["finalized", "finalized"]
        hostile = sorted((tmp_path / "demo" / "logs").glob("node-*.log"))[-2:]
        assert all("attack alie" in p.read_text().lower() for p in hostile), [p.read_text()[-500:] for p in hostile]
        for r in summary["rounds"]:
            out = subprocess.run(
                [sys.executable, "-m", "fedchain.cli", "verify", "--round", str(r["round"]), "--rpc-url",
                 summary["rpc_url"], "--api-url", summary["api_url"], "--deployments-dir",
                 str(tmp_path / "demo" / "deployments"), "--dev-account", "1"],
                capture_output=True, text=True, env=env_with_repo(), cwd=REPO_ROOT, timeout=180,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            assert "verified" in out.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
