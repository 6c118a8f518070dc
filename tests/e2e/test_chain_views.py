"""ChainClient's plain ``eth_call`` views (fedchain/chain/views.py) answer exactly what web3's
contract calls answer, on a real anvil with the real contract: every view the client reads, at
the head and at an earlier block, for rounds that exist and one that does not; and a view that
reverts raises the same named contract error."""

from __future__ import annotations

import pytest

from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundParams
from fedchain.errors import ContractRevert
from fedchain.settings import REPO_ROOT
from harness import deploy_dev_chain, stop_all

NODES = (1, 2)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    dev = deploy_dev_chain(tmp_path_factory.mktemp("views"), NODES)
    try:
        agg = ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                                  account=dev_account(0))
        node = ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                                   account=dev_account(1))
        params = RoundParams(deadline=agg.block_timestamp() + 600, min_updates=1, max_samples=1000,
                             relay_cutoff=5, close_window=60)
        agg.open_round(agg.latest_model_hash(), "0x" + "c0" * 32, params)
        node.submit_update(1, "0x" + "11" * 32, 7)
        yield agg
    finally:
        stop_all([dev.anvil])


def _cases(c: ChainClient) -> list[tuple[object, str, tuple]]:
    n1, n2, stranger = dev_account(1).address, dev_account(2).address, dev_account(7).address
    r, g = c.rounds, c.registry
    return [(r, "currentRoundId", ()), (r, "lastFinalizedRoundId", ()), (r, "gracePeriod", ()),
            (r, "getRound", (1,)), (r, "getRound", (99,)), (r, "getUnmaskPhase", (1,)),
            (r, "hasCommitted", (1, n1)), (r, "hasCommitted", (1, n2)), (r, "isEligible", (1, n2)),
            (r, "isEligible", (1, stranger)), (r, "lastCommittedRound", (n1,)), (r, "hasUnmasked", (1, n1)),
            (r, "latestModelHash", ()), (r, "genesisModelHash", ()), (g, "isActiveNode", (n1,)),
            (g, "isActiveNode", (stranger,)), (g, "nodeCount", ()), (g, "getNode", (n1,)), (g, "getNode", (stranger,))]


def test_every_view_the_client_reads_answers_what_web3_answers(chain, monkeypatch):
    def fell_back(fn, name, block=None):
        raise AssertionError(f"{name}: the plain eth_call path fell back to web3")

    for contract, name, args in _cases(chain):
        with monkeypatch.context() as m:
            m.setattr(chain, "_call", fell_back)
            fast = chain._view(contract, name, *args)
        slow = getattr(contract.functions, name)(*args).call()
        assert fast == slow and type(fast) is type(slow), (name, args, fast, slow)


def test_views_at_an_earlier_block_answer_what_web3_answers_there(chain):
    committed = chain.events_named(chain.deploy_block, None, {"UpdateSubmitted"})[0].block_number
    block = committed - 1  # before the commitment
    assert chain._view(chain.rounds, "hasCommitted", 1, dev_account(1).address, block=block) is False
    for contract, name, args in _cases(chain):
        fast = chain._view(contract, name, *args, block=block)
        slow = getattr(contract.functions, name)(*args).call(block_identifier=block)
        assert fast == slow, (name, args, fast, slow)


def test_a_view_that_reverts_raises_the_named_contract_error(chain):
    with pytest.raises(ContractRevert) as e:
        chain._view(chain.rounds, "isSelected", 999, dev_account(1).address)
    assert e.value.name == "UnknownRound"


def test_the_round_the_client_builds_from_views_carries_the_close_window(chain):
    info = chain.get_round(1)
    assert (info.close_window, info.commit_count, info.relay_cutoff) == (60, 1, 5)
    assert info.deadline < chain.block_timestamp() + 61  # the quorum (1) brought it forward


def test_fee_caps_are_read_once_per_ttl_and_follow_the_base_fee_rule(chain, monkeypatch):
    import json

    import requests

    from fedchain.chain import client as client_mod

    sent: list[str] = []
    orig = requests.Session.post

    def spy(self, url, data=None, **kw):
        sent.append(json.loads(data).get("method", "") if data else "")
        return orig(self, url, data=data, **kw)

    monkeypatch.setattr(requests.Session, "post", spy)
    chain._fee_cache = None
    head = chain.block_number()
    fees = chain._fees()
    # web3's rule on the base fee of the block it read (anvil mines a block a second meanwhile)
    bases = {chain.w3.eth.get_block(b)["baseFeePerGas"] for b in range(head, chain.block_number() + 1)}
    assert any(fees["maxFeePerGas"] == 2 * base + fees["maxPriorityFeePerGas"] for base in bases), (fees, bases)
    for i in (3, 4):  # two transactions inside the TTL: no fee reads of their own
        chain.admit_node(dev_account(i).address)
    assert sent.count("eth_maxPriorityFeePerGas") == 1
    monkeypatch.setattr(client_mod, "FEE_TTL", 0.0)
    chain.admit_node(dev_account(5).address)
    assert sent.count("eth_maxPriorityFeePerGas") == 2


def test_gas_used_and_block_hash_without_web3s_formatters_match_the_receipt_and_the_block(chain):
    from fedchain.errors import NotFound

    tx = chain.admit_node(dev_account(6).address)
    assert chain.gas_used(tx.tx_hash) == chain.receipt(tx.tx_hash).gas_used == tx.gas_used
    assert chain.block_hash(tx.block_number) == "0x" + bytes(chain.w3.eth.get_block(tx.block_number)["hash"]).hex()
    assert chain.block_hash(chain.block_number() + 1000) is None
    with pytest.raises(NotFound):
        chain.gas_used("0x" + "ab" * 32)


def test_events_decoded_from_plain_logs_equal_web3s_decoding(chain):
    """Every log of the deployment so far (roles, admissions, genesis, a round with its struct
    parameters, commitments, a deadline brought forward): the client's plain decoder and web3's
    ``process_log`` over web3's formatted logs give the same records."""
    from web3 import Web3

    from fedchain.chain.client import _hex

    fast = chain.events(chain.deploy_block)
    raw = chain.w3.eth.get_logs({"address": chain._addresses, "fromBlock": chain.deploy_block, "toBlock": "latest"})
    slow = []
    for log in raw:
        cname, event = chain._topics[log["topics"][0]]
        d = event.process_log(log)
        args = {k: (Web3.to_checksum_address(v) if isinstance(v, str) and Web3.is_address(v) else _hex(v))
                for k, v in d["args"].items()}
        args = {k: (dict(v) if hasattr(v, "keys") else v) for k, v in args.items()}
        slow.append((d["event"], cname, args, log["blockNumber"], "0x" + bytes(log["transactionHash"]).hex(),
                     log["logIndex"]))
    got = [(e.name, e.contract, e.args, e.block_number, e.tx_hash, e.log_index) for e in fast]
    assert got == slow
    names = {e.name for e in fast}
    assert {"RoundOpened", "UpdateSubmitted", "DeadlineBroughtForward", "NodeAdmitted"} <= names, names


def test_block_timestamps_read_plainly_are_web3s_and_a_missing_block_is_not_found(chain):
    from fedchain.errors import NotFound

    head = chain.w3.eth.block_number
    assert chain.block_timestamp() == chain.w3.eth.get_block("latest")["timestamp"]
    for block in (0, 1, head):
        assert chain.block_timestamp(block) == chain.w3.eth.get_block(block)["timestamp"]
    with pytest.raises(NotFound, match="no block"):
        chain.block_timestamp(head + 1000)
