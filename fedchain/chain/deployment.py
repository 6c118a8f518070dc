"""The deployment file, ``deployments/<chainId>.json``: where the contracts of one chain live.

Written by ``scripts/deploy.py`` (brownie) and ``fedchain deploy`` (web3); read by the chain client,
the aggregator's API (``GET /deployment``), nodes and auditors. Layout::

    {
      "chain_id": 31337,
      "rpc_url": "http://127.0.0.1:8545",
      "deployer": "0x...",
      "block": 1,
      "aggregator": "0x...",
      "grace_period": 60,
      "contracts": {
        "NodeRegistry":   {"address": "0x...", "abi": "build/contracts/TrainingRounds.json"},
        "TrainingRounds": {"address": "0x...", "abi": "build/contracts/TrainingRounds.json"}
      }
    }

Since protocol v2 the registry is part of ``TrainingRounds``: both entries name the same address.

``block`` is the block of the first deployment transaction (where event scans start); ``abi``
paths are relative to the repository root. This module imports only the standard library and
:mod:`fedchain.errors`, so brownie scripts and the web3 client can both use it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fedchain.errors import ConfigError

CONTRACTS = ("NodeRegistry", "TrainingRounds")
#: Protocol v2: the registry is part of TrainingRounds, so both entries name its artifact.
DEFAULT_ABI_PATHS = {name: "build/contracts/TrainingRounds.json" for name in CONTRACTS}
DEPLOY_HINT = "run `fedchain deploy` or `brownie run scripts/deploy.py`"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class Deployment:
    """One chain's deployment. Addresses are kept as written (deploy scripts write checksummed ones)."""

    chain_id: int
    rpc_url: str
    deployer: str
    block: int
    registry_address: str
    rounds_address: str
    aggregator: str
    grace_period: int
    abi_paths: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ABI_PATHS))

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object (a dict ready for :func:`json.dumps`)."""
        addresses = {"NodeRegistry": self.registry_address, "TrainingRounds": self.rounds_address}
        return {
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "deployer": self.deployer,
            "block": self.block,
            "aggregator": self.aggregator,
            "grace_period": self.grace_period,
            "contracts": {
                name: {"address": addresses[name], "abi": self.abi_paths.get(name, DEFAULT_ABI_PATHS[name])}
                for name in CONTRACTS
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> "Deployment":
        """Parse the file's JSON object (or its text). Raises :class:`ConfigError` when malformed.

        Required: ``chain_id``, ``block`` and both contracts' ``address``. Unknown keys are
        ignored; ``rpc_url``, ``deployer`` and ``aggregator`` default to ``""``, ``grace_period``
        to 0 and each ``abi`` to ``build/contracts/TrainingRounds.json``.
        """
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"deployment is not valid JSON: {exc}", hint=DEPLOY_HINT) from exc
        if not isinstance(data, Mapping):
            raise ConfigError("deployment is not a JSON object", hint=DEPLOY_HINT)
        contracts = data.get("contracts")
        if not isinstance(contracts, Mapping):
            raise ConfigError("deployment has no \"contracts\" object", hint=DEPLOY_HINT)
        addresses: dict[str, str] = {}
        abi_paths: dict[str, str] = {}
        for name in CONTRACTS:
            entry = contracts.get(name)
            if not isinstance(entry, Mapping):
                raise ConfigError(f"deployment has no contracts.{name}", hint=DEPLOY_HINT)
            addresses[name] = _address(entry.get("address"), f"contracts.{name}.address")
            abi_paths[name] = _string(entry.get("abi", DEFAULT_ABI_PATHS[name]), f"contracts.{name}.abi")
        return cls(
            chain_id=_int(data.get("chain_id"), "chain_id", minimum=1),
            rpc_url=_string(data.get("rpc_url", ""), "rpc_url"),
            deployer=_optional_address(data.get("deployer", ""), "deployer"),
            block=_int(data.get("block"), "block", minimum=0),
            registry_address=addresses["NodeRegistry"],
            rounds_address=addresses["TrainingRounds"],
            aggregator=_optional_address(data.get("aggregator", ""), "aggregator"),
            grace_period=_int(data.get("grace_period", 0), "grace_period", minimum=0),
            abi_paths=abi_paths,
        )


def deployment_path(deployments_dir: Path | str, chain_id: int) -> Path:
    """``<deployments_dir>/<chainId>.json``."""
    return Path(deployments_dir) / f"{int(chain_id)}.json"


def write_deployment(dep: Deployment, deployments_dir: Path | str) -> Path:
    """Write ``<deployments_dir>/<chainId>.json`` atomically (creating the folder); returns its path."""
    path = deployment_path(deployments_dir, dep.chain_id)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dep.to_json(), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{dep.chain_id}.", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_deployment(deployments_dir: Path | str, chain_id: int) -> Deployment:
    """Read ``<deployments_dir>/<chainId>.json``. Raises :class:`ConfigError` if it is missing,
    malformed, or written for another chain."""
    path = deployment_path(deployments_dir, chain_id)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no deployment for chain {chain_id}: {path} does not exist", hint=DEPLOY_HINT) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint=DEPLOY_HINT) from exc
    try:
        dep = Deployment.from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{path} is not a valid deployment file: {exc.message}", hint=DEPLOY_HINT) from exc
    if dep.chain_id != int(chain_id):
        raise ConfigError(f"{path} is for chain {dep.chain_id}, not chain {chain_id}", hint=DEPLOY_HINT)
    return dep


# --- validation -------------------------------------------------------------------------------
def _int(value: Any, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"deployment field {key!r} must be an integer >= {minimum}, got {value!r}", hint=DEPLOY_HINT)
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"deployment field {key!r} must be a string, got {value!r}", hint=DEPLOY_HINT)
    return value


def _address(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ConfigError(f"deployment field {key!r} must be a 0x-prefixed 20-byte address, got {value!r}",
                          hint=DEPLOY_HINT)
    return value


def _optional_address(value: Any, key: str) -> str:
    return "" if value in ("", None) else _address(value, key)
