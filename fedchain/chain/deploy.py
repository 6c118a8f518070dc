"""Deploy TrainingRounds (which includes the node registry) with web3 to any EVM JSON-RPC endpoint.

``scripts/deploy.py`` does the same through brownie for the contract workflow; this is what
``fedchain deploy`` and ``fedchain demo`` use, so that a user needs no brownie network config to
deploy to an arbitrary RPC URL. Both write the same ``deployments/<chainId>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedchain.address import to_checksum_address
from fedchain.chain.client import ChainClient, connect_web3
from fedchain.chain.deployment import Deployment, write_deployment
from fedchain.errors import ChainError, ConfigError

#: Protocol v2 deploys one contract: TrainingRounds inherits the NodeRegistry module, so both
#: names of the deployment file point at the same address and artifact.
ARTIFACTS = {"NodeRegistry": "build/contracts/TrainingRounds.json", "TrainingRounds": "build/contracts/TrainingRounds.json"}


def _artifact(repo_root: Path, name: str) -> dict[str, Any]:
    path = repo_root / ARTIFACTS[name]
    try:
        art = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found", hint="compile the contracts first: `brownie compile` (make compile)") from exc
    if not art.get("bytecode"):
        raise ConfigError(f"{path} has no bytecode", hint="run `brownie compile` again")
    return art


def _deploy_one(w3: Web3, account: LocalAccount, art: dict[str, Any], args: Sequence[Any]) -> tuple[str, int]:
    contract = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx = contract.constructor(*args).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
         "chainId": w3.eth.chain_id}
    )
    signed = account.sign_transaction(tx)
    rcpt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60)
    if rcpt["status"] != 1 or not rcpt["contractAddress"]:
        raise ChainError(f"deploying {art.get('contractName')} failed (tx {rcpt['transactionHash'].hex()})")
    return to_checksum_address(rcpt["contractAddress"]), int(rcpt["blockNumber"])


def deploy(
    rpc_url: str,
    account: LocalAccount,
    *,
    repo_root: Path,
    deployments_dir: Path,
    aggregator: str | None = None,
    grace_period: int = 60,
    genesis_hash: str | None = None,
    admit: Sequence[str | tuple[str, bytes]] = (),
    log: Callable[[str], None] = print,
) -> Deployment:
    """Deploy TrainingRounds, grant AGGREGATOR_ROLE, optionally set genesis and admit nodes."""
    w3 = connect_web3(rpc_url)
    aggregator = to_checksum_address(aggregator or account.address)
    # TrainingRounds(address admin, uint64 grace): the admin also holds REGISTRAR_ROLE.
    rounds, block = _deploy_one(w3, account, _artifact(repo_root, "TrainingRounds"), [account.address, int(grace_period)])
    log(f"TrainingRounds {rounds} (node registry included)")
    dep = Deployment(
        chain_id=int(w3.eth.chain_id), rpc_url=rpc_url, deployer=account.address, block=block,
        registry_address=rounds, rounds_address=rounds, aggregator=aggregator, grace_period=int(grace_period),
        abi_paths=dict(ARTIFACTS),
    )
    client = ChainClient(w3, dep, rpc_url=rpc_url, repo_root=repo_root, account=account)
    if not client.has_role("AGGREGATOR_ROLE", aggregator):
        role = client.rounds.functions.AGGREGATOR_ROLE().call()
        client.transact(client.rounds.functions.grantRole(role, aggregator), "grantRole")
    if genesis_hash:
        client.set_genesis_model(genesis_hash)
        log(f"genesis model  {genesis_hash}")
    for entry in admit:
        # An address, or (address, public key): the node's X25519 key for secure rounds.
        node, key = (entry, b"") if isinstance(entry, str) else (entry[0], bytes(entry[1]))
        client.admit_node(node, key)
        log(f"admitted node  {to_checksum_address(node)}" + (f" (X25519 key {key.hex()[:16]}…)" if key else ""))
    path = write_deployment(dep, deployments_dir)
    log(f"wrote {path}")
    return dep
