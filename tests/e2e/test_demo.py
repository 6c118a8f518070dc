"""`fedchain demo` as a user runs it: its own anvil, deploy, aggregator and node processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import contextlib
from typing import Any, Iterator

from fedchain.devchain import env_with_repo
from fedchain.settings import REPO_ROOT
from harness import wait_for


@contextlib.contextmanager
def served_demo(tmp_path, *argv: str) -> Iterator[tuple[subprocess.Popen, dict[str, Any], str]]:
    """`fedchain demo ARGV --serve` until its rounds are done and it serves: (process, JSON
    summary, output so far). Killed on the way out if the test did not stop it."""
    summary_path, log = tmp_path / "summary.json", tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedchain.cli", "demo", *argv, "--json", str(summary_path),
         "--workdir", str(tmp_path / "demo"), "--serve"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env_with_repo(), cwd=REPO_ROOT,
    )
    try:
        wait_for(lambda: "Ctrl-C to stop" in log.read_text() or demo.poll() is not None, 240, "the demo to serve")
        out = log.read_text()
        assert demo.poll() is None, out[-3000:]
        yield demo, json.loads(summary_path.read_text()), out
    finally:
        if demo.poll() is None:
            demo.kill()


def test_demo_runs_a_user_task_serves_and_every_round_verifies(tmp_path):
    with served_demo(tmp_path, "--task", "examples.my_task:task", "--nodes", "2", "--rounds", "2") as (
            demo, summary, out):
        assert summary["api_url"].startswith("http://127.0.0.1:") and summary["chain_id"] == 31337
        assert set(summary["contracts"]) == {"NodeRegistry", "TrainingRounds"}
        rounds = summary["rounds"]
        assert [r["round"] for r in rounds] == [1, 2]
        for r in rounds:
            assert r["status"] == "finalized" and r["accepted"] == 2 and r["rejected"] == 0
            assert r["global_model_hash"].startswith("0x") and len(r["global_model_hash"]) == 66
            assert r["global_model_hash"][:10] in out  # the per-round table
        assert rounds[1]["metrics"]["rmse"] < rounds[0]["metrics"]["rmse"]
        assert summary["api_url"] in out
        # The story: federated vs each node's local-only model vs centralised, on the same held-out set.
        comparison = summary["comparison"]
        assert comparison["federated"] == rounds[-1]["metrics"][comparison["metric"]]
        assert [item["node"] for item in comparison["local_only"]] == [1, 2]
        assert comparison["centralised"] > 0 and "training the references" not in out.splitlines()[-1]
        assert "local-only, node 1" in out and "centralised (all data pooled)" in out
        assert "beats" in out and "local-only models" in out
        # ... then one line with the next commands: verify, rounds and the dashboard.
        nxt = " ".join(line for line in out.splitlines() if line.startswith("next:") or "dashboard:" in line)
        assert "fedchain verify --round 2" in nxt and "fedchain rounds --api-url" in nxt, out[-3000:]
        assert f"{summary['api_url']}/ui" in out
        import httpx

        assert "<script" in httpx.get(f"{summary['api_url']}/ui/", timeout=5).text
        # An auditor with no deployment file: verify refuses to take the contracts from the API it
        # audits and says how to give them; with the published address (--contract) it verifies.
        env = env_with_repo()
        env["FEDCHAIN_DEPLOYMENTS_DIR"] = str(tmp_path / "no-deployments")
        audit = [sys.executable, "-m", "fedchain.cli", "verify", "--rpc-url", summary["rpc_url"],
                 "--api-url", summary["api_url"], "--dev-account", "1"]
        refused = subprocess.run([*audit, "--round", "1"], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                                 timeout=120)
        assert refused.returncode != 0 and "--contract" in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr
        for r in rounds:
            check = subprocess.run(
                [*audit, "--round", str(r["round"]), "--contract", summary["contracts"]["TrainingRounds"]],
                capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
            )
            assert check.returncode == 0, check.stdout + check.stderr
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0


def test_a_node_that_dies_before_committing_costs_the_close_window_not_the_deadline(tmp_path):
    """Three real node processes, a 300 s deadline and a 6 s close window; node 3 crashes after
    uploading in round 2. Round 2 finalizes with the other two within seconds, because their
    commitments (the quorum of 2) brought the deadline forward on-chain, and verify passes."""
    with served_demo(tmp_path, "--nodes", "3", "--rounds", "2", "--min-updates", "2", "--round-seconds", "300",
                     "--close-window", "6", "--relay-cutoff", "1", "--crash-at", "3=after-upload@2",
                     "--no-compare") as (demo, summary, out):
        r1, r2 = summary["rounds"]
        assert (r1["status"], r1["accepted"]) == ("finalized", 3)
        assert (r2["status"], r2["accepted"]) == ("finalized", 2), out[-3000:]
        assert r2["seconds"] < 60, r2  # far from the 300 s deadline
        from fedchain.chain.client import ChainClient

        chain = ChainClient.connect(summary["rpc_url"], deployments_dir=tmp_path / "demo" / "deployments",
                                    repo_root=REPO_ROOT)
        info = chain.get_round(2)
        moved = [e for e in chain.events_named(info.opened_at, None, {"DeadlineBroughtForward"})]
        assert [int(e.args["roundId"]) for e in moved] == [2] and info.close_window == 6
        assert int(moved[0].args["deadline"]) == info.deadline
        assert info.deadline == chain.block_timestamp(moved[0].block_number) + 6 - 1  # a 6 s window: that second and 5 more
        check = subprocess.run(
            [sys.executable, "-m", "fedchain.cli", "verify", "--round", "2", "--rpc-url", summary["rpc_url"],
             "--api-url", summary["api_url"], "--deployments-dir", str(tmp_path / "demo" / "deployments"),
             "--dev-account", "1"], capture_output=True, text=True, env=env_with_repo(), cwd=REPO_ROOT, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0
