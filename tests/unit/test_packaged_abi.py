"""The ABI shipped in the package (fedchain/chain/abi/, what a wheel-installed node uses) never goes
stale: it equals the compiled artifact's ABI, and it was exported from the contract sources as
they are now (so even a clone that has not compiled yet notices an edited contract)."""

from __future__ import annotations

import os

import hashlib
import json
import tomllib
from pathlib import Path

import pytest
from web3 import Web3

from fedchain.chain.client import ChainClient, packaged_abi, resolve_abi
from fedchain.chain.deployment import Deployment
from fedchain.errors import ConfigError
from fedchain.settings import REPO_ROOT

PACKAGED = REPO_ROOT / "fedchain" / "chain" / "abi" / "TrainingRounds.json"
ARTIFACT = REPO_ROOT / "build" / "contracts" / "TrainingRounds.json"
FIX = "run `python scripts/export_abi.py` (make compile does it) and commit fedchain/chain/abi/"


def test_packaged_abi_matches_the_compiled_artifact() -> None:
    if not ARTIFACT.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("build/contracts/TrainingRounds.json absent: run `make compile`")  # CI installs and compiles it
    compiled = json.loads(ARTIFACT.read_text())
    assert packaged_abi("TrainingRounds") == compiled["abi"], f"the packaged ABI is stale: {FIX}"


def test_packaged_abi_was_exported_from_the_current_sources() -> None:
    sources = json.loads(PACKAGED.read_text())["sources"]
    assert "contracts/TrainingRounds.sol" in sources
    for rel, sha1 in sources.items():
        now = hashlib.sha1((REPO_ROOT / rel).read_bytes()).hexdigest()
        assert now == sha1, f"{rel} changed since the packaged ABI was exported: {FIX}"


def test_the_export_script_agrees(tmp_path: Path) -> None:
    if not ARTIFACT.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("build/contracts absent: run `make compile`")  # CI installs and compiles it
    import runpy

    mod = runpy.run_path(str(REPO_ROOT / "scripts" / "export_abi.py"), run_name="export_abi")
    text = mod["render"](mod["packaged"](json.loads(ARTIFACT.read_text()), ARTIFACT.parent))
    assert text == PACKAGED.read_text(), f"the packaged ABI file is stale: {FIX}"


def test_wheel_declares_the_abi_as_package_data() -> None:
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "abi/*.json" in meta["tool"]["setuptools"]["package-data"]["fedchain.chain"]


def test_resolve_abi_prefers_the_artifact_and_falls_back_to_the_package(tmp_path: Path) -> None:
    rel = "build/contracts/TrainingRounds.json"
    # no checkout (a wheel install): the packaged copy
    assert resolve_abi(tmp_path, rel) == packaged_abi("TrainingRounds")
    # a checkout with a compiled artifact: that artifact
    art = tmp_path / rel
    art.parent.mkdir(parents=True)
    art.write_text(json.dumps({"abi": [{"type": "event", "name": "Marker", "inputs": [], "anonymous": False}]}))
    assert resolve_abi(tmp_path, rel)[0]["name"] == "Marker"
    # an artifact name the package does not ship: the usual error naming the file and the fix
    with pytest.raises(ConfigError, match="NoSuch.json not found"):
        resolve_abi(tmp_path, "build/contracts/NoSuch.json")


def test_chain_client_builds_without_a_repository(tmp_path: Path) -> None:
    addr = "0x" + "11" * 20
    dep = Deployment(chain_id=31337, rpc_url="", deployer="", block=0, registry_address=addr,
                     rounds_address=addr, aggregator="", grace_period=0)
    w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9"))  # never contacted: building needs no chain
    client = ChainClient(w3, dep, rpc_url="http://127.0.0.1:9", repo_root=tmp_path)
    assert client.rounds.functions.openRound is not None
    assert client.registry is client.rounds
