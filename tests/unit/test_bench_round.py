"""scripts/bench.py's round benchmark: one case run as `make bench` runs it (a child per case), with
the blobs made by the harness and read through a real FilesystemStore, on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _case(spec: str) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--round-case", spec],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", ["harness", "store"])
def test_a_round_case_runs_in_a_child_and_reports_its_time_bytes_and_peak(source):
    before = set(Path(tempfile.gettempdir()).glob("fedchain-bench-*"))
    r = _case(f"3,4000,fedavg,{source}")
    assert (r["n"], r["p"], r["source"]) == (3, 4000, source)
    assert r["seconds"] > 0 and r["peak_kib"] >= r["before_kib"] > 0
    assert r["update_bytes"] > 3 * 4 * 4000  # three blobs: the float32 payload and each header
    # the store's fetch includes the hash, so it has no separate fetch time; the harness's does
    assert (r["fetch_seconds"] is None) == (source == "store")
    assert set(Path(tempfile.gettempdir()).glob("fedchain-bench-*")) == before  # the store's folder is gone


def test_a_case_named_without_its_source_reads_the_harness_blobs():
    assert _case("2,2000,fedavg")["source"] == "harness"
