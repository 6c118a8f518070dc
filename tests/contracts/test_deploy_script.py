"""scripts/deploy.py and the deployment file it writes (fedchain/chain/deployment.py)."""

import json

import pytest
from brownie import TrainingRounds, accounts, web3
from conftest import ZERO, h, role

from fedchain.chain.deployment import Deployment, load_deployment, write_deployment
from fedchain.errors import ConfigError
from scripts.deploy import main as deploy_main

ENV = ("FEDCHAIN_AGGREGATOR", "FEDCHAIN_GRACE_PERIOD", "FEDCHAIN_GENESIS_HASH", "FEDCHAIN_ADMIT",
       "FEDCHAIN_DEPLOYMENTS_DIR")


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEDCHAIN_DEPLOYMENTS_DIR", str(tmp_path))
    return monkeypatch


def test_deploy_script_deploys_one_contract_configures_it_and_writes_the_deployment_file(env, tmp_path):
    nodes = [accounts[3].address, accounts[4].address]
    env.setenv("FEDCHAIN_AGGREGATOR", accounts[1].address.lower())
    env.setenv("FEDCHAIN_GRACE_PERIOD", "30")
    env.setenv("FEDCHAIN_GENESIS_HASH", h("genesis"))
    env.setenv("FEDCHAIN_ADMIT", " , ".join(nodes))
    dep = deploy_main()

    assert load_deployment(tmp_path, web3.eth.chain_id) == dep
    data = json.loads((tmp_path / f"{web3.eth.chain_id}.json").read_text())
    assert list(data) == ["chain_id", "rpc_url", "deployer", "block", "aggregator", "grace_period", "contracts"]
    # One contract: both entries carry its address and its ABI.
    assert data["contracts"]["NodeRegistry"] == data["contracts"]["TrainingRounds"] == {
        "address": dep.rounds_address, "abi": "build/contracts/TrainingRounds.json"}
    assert dep.registry_address == dep.rounds_address
    assert (dep.deployer, dep.aggregator, dep.grace_period) == (accounts[0].address, accounts[1].address, 30)
    assert dep.rpc_url.startswith("http")

    rounds = TrainingRounds.at(dep.rounds_address)
    assert web3.eth.get_transaction_receipt(rounds.tx.txid)["blockNumber"] == dep.block
    assert web3.eth.get_transaction_receipt(rounds.tx.txid)["contractAddress"] == rounds.address
    assert rounds.gracePeriod() == 30
    assert rounds.genesisModelHash() == h("genesis")
    assert rounds.hasRole(role("AGGREGATOR_ROLE"), accounts[1])
    assert rounds.hasRole(role("DEFAULT_ADMIN_ROLE"), accounts[0])
    assert rounds.hasRole(role("REGISTRAR_ROLE"), accounts[0])
    assert rounds.nodeCount() == 2
    for node in nodes:
        record = rounds.getNode(node)
        assert (record[0], record[2], record[3]) == (True, 0, 0)  # active, joinedRound, keyRound
    # The admitted nodes are eligible in round 1.
    rounds.openRound(h("genesis"), h("config"), (web3.eth.get_block("latest")["timestamp"] + 100, 2, 10, 0, 0, 0, 0, 0),
                     {"from": accounts[1]})
    assert all(rounds.isEligible(1, node) for node in nodes)


def test_deploy_script_defaults_to_the_deployer_as_aggregator_and_60_seconds(env, tmp_path):
    dep = deploy_main()
    rounds = TrainingRounds.at(dep.rounds_address)
    assert dep.aggregator == accounts[0].address
    assert rounds.hasRole(role("AGGREGATOR_ROLE"), accounts[0])
    assert rounds.gracePeriod() == dep.grace_period == 60
    assert rounds.genesisModelHash() == ZERO
    assert rounds.nodeCount() == 0


@pytest.mark.parametrize(
    "name, value",
    [
        ("FEDCHAIN_AGGREGATOR", "0x1234"),
        ("FEDCHAIN_GRACE_PERIOD", "-1"),
        ("FEDCHAIN_GRACE_PERIOD", str(366 * 24 * 3600)),
        ("FEDCHAIN_GENESIS_HASH", "0xabc"),
        ("FEDCHAIN_GENESIS_HASH", ZERO),
        ("FEDCHAIN_ADMIT", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8,nope"),
        ("FEDCHAIN_ADMIT", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8,0x70997970c51812dc3a010c7d01b50e0d17dc79c8"),
    ],
)
def test_deploy_script_rejects_bad_settings_before_sending_anything(env, tmp_path, name, value):
    env.setenv(name, value)
    block = web3.eth.block_number
    with pytest.raises(SystemExit, match=name):
        deploy_main()
    assert web3.eth.block_number == block
    assert list(tmp_path.iterdir()) == []


def test_load_deployment_explains_a_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as missing:
        load_deployment(tmp_path, 31337)
    assert "scripts/deploy.py" in missing.value.hint
    for text, reason in [("{", "not valid JSON"), ("[]", "not a JSON object"), ('{"chain_id": 31337}', "contracts"),
                         ('{"chain_id": 31337, "block": 1, "contracts": {"NodeRegistry": {"address": "0x1"}}}',
                          "address")]:
        (tmp_path / "31337.json").write_text(text)
        with pytest.raises(ConfigError, match=reason) as bad:
            load_deployment(tmp_path, 31337)
        assert "fedchain deploy" in bad.value.hint


def test_load_deployment_refuses_a_file_written_for_another_chain(tmp_path):
    dep = Deployment(chain_id=5, rpc_url="", deployer="", block=0, registry_address="0x" + "11" * 20,
                     rounds_address="0x" + "22" * 20, aggregator="", grace_period=0,
                     abi_paths={"NodeRegistry": "a.json", "TrainingRounds": "b.json"})
    write_deployment(dep, tmp_path)
    (tmp_path / "6.json").write_text((tmp_path / "5.json").read_text())
    with pytest.raises(ConfigError, match="for chain 5, not chain 6"):
        load_deployment(tmp_path, 6)
    assert load_deployment(tmp_path, 5) == dep
    assert Deployment.from_json(json.dumps(dep.to_json())) == dep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5.json", "6.json"]  # no temporary file left
