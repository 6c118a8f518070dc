"""Where the CLI's URLs come from, and the one-aggregator-per-folder/deployment lock."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from fedchain.aggregator import lock
from fedchain.cli import api_round_rows, build_parser, _settings
from fedchain.cliutil import record_api_url, resolve_api_url, resolve_rpc_url
from fedchain.console import round_table
from fedchain.errors import ConfigError

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _deployment(folder, chain_id=31337, rpc="http://127.0.0.1:18545", **extra):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"chain_id": chain_id, "rpc_url": rpc, "block": 1,
            "contracts": {n: {"address": ADDRESS} for n in ("NodeRegistry", "TrainingRounds")}, **extra}
    (folder / f"{chain_id}.json").write_text(json.dumps(data))
    return folder / f"{chain_id}.json"


@pytest.fixture(autouse=True)
def _no_url_env(monkeypatch):
    for var in ("FEDCHAIN_RPC_URL", "FEDCHAIN_API_URL", "FEDCHAIN_DEPLOYMENTS_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_flag_beats_env_beats_deployment_file_beats_default(tmp_path, monkeypatch):
    deps = tmp_path / "deployments"
    assert resolve_rpc_url(None, deps) == "http://127.0.0.1:8545"
    assert resolve_api_url(None, deps) == "http://127.0.0.1:8000"
    _deployment(deps, api_url="http://127.0.0.1:18000")
    assert resolve_rpc_url(None, deps) == "http://127.0.0.1:18545"
    assert resolve_api_url(None, deps) == "http://127.0.0.1:18000"
    monkeypatch.setenv("FEDCHAIN_RPC_URL", "http://env:1")
    assert resolve_rpc_url(None, deps) == "http://env:1"
    assert resolve_rpc_url("http://flag:2", deps) == "http://flag:2"


def test_commands_resolve_urls_after_parsing(tmp_path):
    deps = tmp_path / "deployments"
    _deployment(deps, api_url="http://127.0.0.1:18000")
    args = build_parser().parse_args(["verify", "--round", "1", "--deployments-dir", str(deps)])
    s = _settings(args)
    assert (s.rpc_url, s.api_url) == ("http://127.0.0.1:18545", "http://127.0.0.1:18000")
    agg = build_parser().parse_args(["aggregator", "--port", "18001", "--deployments-dir", str(deps)])
    s = _settings(agg)
    assert s.api_url == "http://127.0.0.1:18001" and s.rpc_url == "http://127.0.0.1:18545"  # its own API


def test_aggregator_records_its_api_url_only_in_its_own_deployment(tmp_path):
    path = _deployment(tmp_path)
    assert record_api_url(tmp_path, 31337, ADDRESS.lower(), "http://127.0.0.1:18000")
    assert json.loads(path.read_text())["api_url"] == "http://127.0.0.1:18000"
    assert not record_api_url(tmp_path, 31337, "0x" + "11" * 20, "http://elsewhere")
    assert not record_api_url(tmp_path, 5, ADDRESS, "http://elsewhere")  # no file for that chain
    assert json.loads(path.read_text())["api_url"] == "http://127.0.0.1:18000"


def _hold(data_dir, ready, release):
    held = lock.acquire(data_dir, chain_id=31337, contract=ADDRESS, deploy_block_hash="0xab", api_url="http://a:1")
    ready.set()
    release.wait(20)
    held.release()


def test_second_aggregator_is_refused_naming_the_holder(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path / "a", ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(ConfigError) as same_dir:
            lock.acquire(tmp_path / "a", chain_id=31337, contract=ADDRESS, deploy_block_hash="0xab", api_url="x")
        assert f"pid {holder.pid}" in same_dir.value.message and "http://a:1" in same_dir.value.message
        assert "data folder" in same_dir.value.message and "--data-dir" in (same_dir.value.hint or "")
        with pytest.raises(ConfigError) as same_contract:
            lock.acquire(tmp_path / "b", chain_id=31337, contract=ADDRESS.lower(), deploy_block_hash="0xAB", api_url="x")
        assert "the contract" in same_contract.value.message and f"pid {holder.pid}" in same_contract.value.message
        # Another chain behind the same address (a restarted anvil: another deployment block hash) is free.
        other = lock.acquire(tmp_path / "c", chain_id=31337, contract=ADDRESS, deploy_block_hash="0xcd", api_url="x")
        other.release()
    finally:
        release.set()
        holder.join(20)
    # The holder is gone: the lock is free again (a crash frees it too: flock dies with the process).
    again = lock.acquire(tmp_path / "a", chain_id=31337, contract=ADDRESS, deploy_block_hash="0xab", api_url="x")
    again.release()
    assert os.path.exists(tmp_path / "a" / "aggregator.lock")


def test_rounds_rows_from_the_api_match_the_aggregator_table():
    items = [
        {"round_id": 2, "status": "open", "commit_count": 1, "accepted_count": 0, "global_model_hash": None,
         "open_gas_used": 134600, "close_gas_used": None, "metrics": None},
        {"round_id": 1, "status": "finalized", "commit_count": 3, "accepted_count": 2, "global_model_hash": "0x" + "ab" * 32,
         "open_gas_used": 149472, "close_gas_used": 87794, "metrics": {"rmse": 4.5}},
    ]
    rows = api_round_rows(items)
    assert [r.round for r in rows] == [1, 2]
    assert (rows[0].accepted, rows[0].rejected, rows[0].gas) == (2, 1, {"open": 149472, "finalize": 87794})
    assert rows[1].accepted == "1 committed" and rows[1].rejected == "-"
    table = round_table(rows, "rmse")
    assert [c.header for c in table.columns][-1] == "val rmse" and table.row_count == 2
