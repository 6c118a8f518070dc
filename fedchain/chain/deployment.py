"""``deployments/<chainId>.json``: where fedchain's contracts live on a chain.

Written by ``scripts/deploy.py`` (brownie) and ``fedchain deploy`` (web3); read by every service,
so nothing hard-codes an address. Only stdlib + fedchain.errors here: brownie scripts import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError

_HINT = "run `fedchain deploy` or `brownie run scripts/deploy.py --network development`"


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    rpc_url: str
    deployer: str
    block: int
    registry_address: str
    rounds_address: str
    aggregator: str
    grace_period: int
    abi_paths: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "deployer": self.deployer,
            "block": self.block,
            "aggregator": self.aggregator,
            "grace_period": self.grace_period,
            "contracts": {
                "NodeRegistry": {"address": self.registry_address,
                                 "abi": self.abi_paths.get("NodeRegistry", "build/contracts/NodeRegistry.json")},
                "TrainingRounds": {"address": self.rounds_address,
                                   "abi": self.abi_paths.get("TrainingRounds", "build/contracts/TrainingRounds.json")},
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Deployment":
        try:
            contracts = data["contracts"]
            return cls(
                chain_id=int(data["chain_id"]),
                rpc_url=str(data.get("rpc_url", "")),
                deployer=str(data.get("deployer", "")),
                block=int(data.get("block", 0)),
                registry_address=str(contracts["NodeRegistry"]["address"]),
                rounds_address=str(contracts["TrainingRounds"]["address"]),
                aggregator=str(data.get("aggregator", "")),
                grace_period=int(data.get("grace_period", 0)),
                abi_paths={
                    name: str(contracts[name].get("abi", f"build/contracts/{name}.json"))
                    for name in ("NodeRegistry", "TrainingRounds")
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed deployment description ({type(exc).__name__}: {exc})", hint=_HINT) from exc


def deployment_path(deployments_dir: Path | str, chain_id: int) -> Path:
    return Path(deployments_dir) / f"{int(chain_id)}.json"


def write_deployment(dep: Deployment, deployments_dir: Path | str) -> Path:
    """Atomically write ``<dir>/<chainId>.json``."""
    path = deployment_path(deployments_dir, dep.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(dep.to_json(), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def load_deployment(deployments_dir: Path | str, chain_id: int) -> Deployment:
    path = deployment_path(deployments_dir, chain_id)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no deployment for chain {chain_id}: {path} does not exist", hint=_HINT) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})", hint=_HINT) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a deployment description", hint=_HINT)
    dep = Deployment.from_json(data)
    if dep.chain_id != int(chain_id):
        raise ConfigError(f"{path} describes chain {dep.chain_id}, not {chain_id}", hint=_HINT)
    return dep
