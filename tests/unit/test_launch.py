"""fedchain.launch: node processes forked from a warmed-up parent (the demo's fast start-up)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from fedchain.launch import fork_node

# Each case forks from a fresh interpreter: the test process itself runs threads (fork_node refuses).
PARENT = textwrap.dedent("""
    import json, pathlib, sys, time
    from fedchain.launch import fork_node
    argv, log, cwd, stop_when = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
    child = fork_node(argv, log_path=log, env={"PATH": "/usr/bin:/bin", "FEDCHAIN_TEST": "1"}, cwd=cwd)
    if stop_when:  # SIGTERM once the child's log shows it got there (and is still running)
        end = time.monotonic() + 60
        while stop_when not in (log.read_text() if log.exists() else "") and child.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        print("running:", child.poll() is None)
        child.terminate()
    print("exit:", child.wait(60))
""")


def _run(tmp_path, argv, stop_when=""):
    import json

    log = tmp_path / "node.log"
    out = subprocess.run([sys.executable, "-c", PARENT, json.dumps(argv), str(log), str(tmp_path), stop_when],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout, log.read_text()


def test_forked_node_runs_the_node_command_into_its_own_log(tmp_path):
    stdout, log = _run(tmp_path, ["--help"])
    assert "exit: 0" in stdout
    assert "--ready-file" in log and "usage" in log.lower()  # the node's own parser, in the node's log


def test_forked_node_error_is_one_line_in_its_log_and_its_exit_code(tmp_path):
    stdout, log = _run(tmp_path, ["--dev-account", "1", "--shard", "5", "--num-shards", "2"])
    code = int(stdout.split("exit:")[1])
    assert code not in (0, None) and "error: --shard 5 is not in 0..1" in log and "Traceback" not in log


def test_forked_node_stops_on_sigterm_while_it_waits_for_a_chain(tmp_path):
    stdout, log = _run(tmp_path, ["--dev-account", "1", "--rpc-url", "http://127.0.0.1:9", "--api-url",
                                  "http://127.0.0.1:9", "--retry-seconds", "60"], stop_when="retrying in")
    assert "running: True" in stdout  # still retrying the dead chain
    assert "exit: 143" in stdout and "retrying in" in log  # the node's own SIGTERM handler ended it


def test_fork_is_refused_while_other_threads_run(tmp_path):
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        with pytest.raises(RuntimeError, match="single-threaded parent"):
            fork_node(["--help"], log_path=tmp_path / "x.log", env={}, cwd=tmp_path)
    finally:
        stop.set()
