"""`fedchain demo` as a user runs it: its own anvil, deploy, aggregator and node processes."""

from __future__ import annotations

import json
import subprocess
import sys

from fedchain.devchain import env_with_repo
from fedchain.settings import REPO_ROOT


def test_demo_runs_a_user_task_and_writes_the_summary(tmp_path):
    summary_path = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "fedchain.cli", "demo", "--task", "examples.my_task:task", "--nodes", "2",
         "--rounds", "2", "--json", str(summary_path), "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env_with_repo(), cwd=REPO_ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["api_url"].startswith("http://127.0.0.1:") and summary["chain_id"] == 31337
    assert set(summary["contracts"]) == {"NodeRegistry", "TrainingRounds"}
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["status"] == "finalized" and r["accepted"] == 2 and r["rejected"] == 0
        assert r["global_model_hash"].startswith("0x") and len(r["global_model_hash"]) == 66
        assert "rmse" in r["metrics"]
    assert rounds[1]["metrics"]["rmse"] < rounds[0]["metrics"]["rmse"]
    assert "fedchain rounds" in out.stdout and summary["api_url"] in out.stdout  # where to look next
    for h in (r["global_model_hash"] for r in rounds):
        assert h[:10] in out.stdout  # the per-round table
