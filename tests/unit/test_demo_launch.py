"""The demo's launch of node processes: it waits for every node to be ready, and stops them together."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fedchain.demo import ready_file, wait_for_nodes
from fedchain.devchain import stop_processes
from fedchain.console import make_console
from fedchain.errors import FedchainError


def _proc(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_demo_waits_until_every_node_wrote_its_ready_file(tmp_path):
    (tmp_path / "logs").mkdir()
    files = [ready_file(tmp_path, i) for i in (1, 2)]
    procs = [_proc(f"import time, pathlib; time.sleep({d}); pathlib.Path({str(f)!r}).write_text('{{}}'); "
                   f"time.sleep(30)") for d, f in ((0.2, files[0]), (0.8, files[1]))]
    try:
        waited = wait_for_nodes(procs, files, tmp_path / "logs", timeout=20, console=make_console())
        assert waited >= 0.8 and all(f.exists() for f in files)
    finally:
        stop_processes(procs)


def test_a_node_that_dies_before_it_is_ready_stops_the_demo_with_its_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "node-1.log").write_text("error: 0xabc is not an active node of the registry\n")
    procs = [_proc("import sys; sys.exit(2)")]
    with pytest.raises(FedchainError, match="node 1 exited with code 2 before it was ready") as info:
        wait_for_nodes(procs, [ready_file(tmp_path, 1)], logs, timeout=20, console=make_console())
    assert "not an active node" in info.value.message and "node-1.log" in info.value.hint


def test_nodes_not_ready_in_time_name_the_ready_timeout(tmp_path):
    (tmp_path / "logs").mkdir()
    procs = [_proc("import time; time.sleep(30)")]
    try:
        with pytest.raises(FedchainError, match="only 0 of 1 nodes were ready after 0 s") as info:
            wait_for_nodes(procs, [ready_file(tmp_path, 1)], tmp_path / "logs", timeout=0.3, console=make_console())
        assert "--ready-timeout" in info.value.hint
    finally:
        stop_processes(procs)


def test_stopping_many_nodes_takes_one_shared_timeout_not_one_each():
    # each ignores SIGTERM for 30 s, so only the shared deadline and the kill end them
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(30)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(4)]
    for p in procs:
        p.stdout.readline()  # the handler is installed
    t = time.monotonic()
    stop_processes(procs, timeout=1.0)
    assert all(p.poll() is not None for p in procs)
    assert time.monotonic() - t < 3.0  # four one-second waits in a row would take over 4 s
