"""Deploy the fedchain contract (TrainingRounds, which includes the node registry) with brownie,
and write ``deployments/<chainId>.json``.

    brownie run scripts/deploy.py --network development

Environment (all optional):

    FEDCHAIN_AGGREGATOR      address granted AGGREGATOR_ROLE (default: the deployer)
    FEDCHAIN_GRACE_PERIOD    seconds after a deadline before anyone may expire a round (default 60)
    FEDCHAIN_GENESIS_HASH    0x + 64 hex: set as the genesis model
    FEDCHAIN_ADMIT           comma-separated node addresses to admit (empty key, zero metadata)
    FEDCHAIN_DEPLOYMENTS_DIR where to write <chainId>.json (default: deployments/ in the repository)

Since protocol v2 there is one contract: ``TrainingRounds`` inherits the registry. The deployer
(brownie's ``accounts[0]``) receives DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE. The deployment file
still names both a NodeRegistry and a TrainingRounds entry (the client's schema); both carry the
one address and the one ABI. If brownie attached to an anvil that was already running (e.g.
``anvil`` or ``fedchain chain`` on port 8545), that chain keeps running after the script ends;
if brownie launched anvil itself, the chain and the deployment go away with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brownie import TrainingRounds, accounts, network, web3

from fedchain.chain.deployment import Deployment, write_deployment

REPO_ROOT = Path(__file__).resolve().parent.parent
ZERO_HASH = "0x" + "00" * 32
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _fail(message: str) -> None:
    raise SystemExit(f"error: {message}")


def read_config(env: dict[str, str] | os._Environ = os.environ) -> dict:
    """Validate the FEDCHAIN_* variables before anything is sent."""
    aggregator = env.get("FEDCHAIN_AGGREGATOR", "").strip() or None
    if aggregator is not None and not _ADDRESS.match(aggregator):
        _fail(f"FEDCHAIN_AGGREGATOR={aggregator!r} is not a 0x-prefixed 20-byte address")
    grace_raw = env.get("FEDCHAIN_GRACE_PERIOD", "").strip() or "60"
    if not grace_raw.isdigit() or int(grace_raw) > 365 * 24 * 3600:
        _fail(f"FEDCHAIN_GRACE_PERIOD={grace_raw!r} must be a whole number of seconds, at most 365 days")
    genesis = env.get("FEDCHAIN_GENESIS_HASH", "").strip() or None
    if genesis is not None and (not _HASH.match(genesis) or int(genesis, 16) == 0):
        _fail(f"FEDCHAIN_GENESIS_HASH={genesis!r} must be 0x followed by 64 hex digits, not all zero")
    admit = [a.strip() for a in env.get("FEDCHAIN_ADMIT", "").split(",") if a.strip()]
    for address in admit:
        if not _ADDRESS.match(address):
            _fail(f"FEDCHAIN_ADMIT: {address!r} is not a 0x-prefixed 20-byte address")
    if len(set(a.lower() for a in admit)) != len(admit):
        _fail("FEDCHAIN_ADMIT lists an address twice")
    out_dir = Path(env.get("FEDCHAIN_DEPLOYMENTS_DIR", "").strip() or REPO_ROOT / "deployments")
    return {"aggregator": aggregator, "grace_period": int(grace_raw), "genesis": genesis, "admit": admit,
            "deployments_dir": out_dir}


def main() -> Deployment:
    config = read_config()
    if not accounts:
        _fail(f"network {network.show_active()!r} has no unlocked account to deploy from; add one with "
              "`brownie accounts` and load it, or use --network development")
    deployer = accounts[0]
    aggregator = config["aggregator"] or deployer.address
    # brownie's development network prices gas at 0, which a node with a base fee (a plain
    # `anvil`, `fedchain chain`) refuses: pay what the node asks for.
    tx = {"from": deployer, "gas_price": web3.eth.gas_price}

    rounds = TrainingRounds.deploy(deployer, config["grace_period"], tx)
    rounds.grantRole(rounds.AGGREGATOR_ROLE(), aggregator, tx)
    if config["genesis"]:
        rounds.setGenesisModel(config["genesis"], tx)
    for node in config["admit"]:
        rounds.admitNode(node, b"", ZERO_HASH, tx)

    dep = Deployment(
        chain_id=int(web3.eth.chain_id),
        rpc_url=str(web3.provider.endpoint_uri),
        deployer=deployer.address,
        block=int(rounds.tx.block_number),
        registry_address=rounds.address,
        rounds_address=rounds.address,
        aggregator=web3.to_checksum_address(aggregator),
        grace_period=config["grace_period"],
        abi_paths={name: "build/contracts/TrainingRounds.json" for name in ("NodeRegistry", "TrainingRounds")},
    )
    path = write_deployment(dep, config["deployments_dir"])
    print(f"TrainingRounds {rounds.address}  (node registry included; grace period {dep.grace_period} s)")
    print(f"aggregator     {dep.aggregator}")
    if config["genesis"]:
        print(f"genesis model  {config['genesis']}")
    for node in config["admit"]:
        print(f"admitted       {web3.to_checksum_address(node)}")
    print(f"wrote {path}")
    return dep
