"""The aggregator's seal of a secure round's commit phase, on a real anvil (mixed mining, blocks
stamped with whole seconds of its clock, as `fedchain chain` and the demo run it).

The seal names the number of commitments the aggregator checked (``sealCommitments(round,
excluded, commitCount)``), so the aggregator may send it as soon as its own clock has passed the
deadline's second, without first waiting for a block stamped past the deadline: a commitment that
lands after it read the list makes the contract refuse the seal (``CommitmentsChanged``), and the
aggregator reads and checks the list again. These tests drive ``Aggregator._seal`` against the
contract: the refusal of a stale list, the seal timed by the clock, and a chain clock that lags.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from fedchain.aggregator.service import Aggregator
from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundParams
from fedchain.settings import REPO_ROOT
from fedchain.store.filesystem import FilesystemStore
from fedchain.tasks import load_task
from harness import deploy_dev_chain, stop_all

NODES = (1, 2, 3)
CONFIG = "0x" + "c0" * 32


@pytest.fixture
def chain(tmp_path):
    """A chain of its own for each test: a sealed round stays open, and no round opens beside it."""
    dev = deploy_dev_chain(tmp_path, NODES)
    try:
        clients = {i: ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                                          account=dev_account(i)) for i in (0, *NODES)}
        yield dev, clients
    finally:
        stop_all([dev.anvil])


@pytest.fixture
def aggregator(chain, tmp_path):
    _, clients = chain
    lines: list[str] = []
    agg = Aggregator(clients[0], FilesystemStore(tmp_path / "blobs"), load_task("options-iv"),
                     task_spec="options-iv", log=lines.append)
    agg.lines = lines  # type: ignore[attr-defined]
    return agg


def open_secure(clients, seconds: int) -> int:
    """A secure round (threshold 1, quorum 1) whose deadline is ``seconds`` of chain time away."""
    agg = clients[0]
    params = RoundParams(deadline=agg.block_timestamp() + seconds, min_updates=1, max_samples=10_000,
                         threshold=1, unmask_window=60)
    return agg.open_round(agg.latest_model_hash(), CONFIG, params)[0]


def commit(clients, rid: int, i: int) -> None:
    clients[i].submit_update(rid, "0x" + f"{rid:02x}{i:02x}" * 16, 10)


def wait_for_chain_time_past(client: ChainClient, t: int) -> None:
    assert client.wait_until(lambda: client.block_timestamp() > t, timeout=30, poll=0.05)


def test_a_seal_on_a_list_that_grew_after_it_was_read_is_refused_and_read_again(chain, aggregator):
    _, clients = chain
    rid = open_secure(clients, 4)
    commit(clients, rid, 1)
    commit(clients, rid, 2)
    checked = clients[0].secure_view(rid).info  # the aggregator reads (and checks) two commitments ...
    commit(clients, rid, 3)  # ... and a third lands before the deadline
    wait_for_chain_time_past(clients[0], checked.deadline)
    gas: dict[str, int] = {}

    assert aggregator._seal(rid, checked, [], gas, closed=True) == "again"
    assert not clients[0].unmask_phase(rid).sealed and "seal" not in gas
    assert any("2 checked" in line and "3 now" in line for line in aggregator.lines), aggregator.lines

    fresh = clients[0].secure_view(rid).info
    assert fresh.commit_count == 3
    assert aggregator._seal(rid, fresh, [], gas, closed=True) == "sealed"
    phase = clients[0].unmask_phase(rid)
    assert phase.sealed and phase.survivor_count == 3 and gas["seal"] > 0
    view = clients[0].secure_view(rid)
    assert view.excluded == [] and {c.node for c in view.commitments} == {dev_account(i).address for i in NODES}


def test_a_seal_sent_as_the_deadlines_second_ends_by_this_clock_is_accepted(chain, aggregator):
    _, clients = chain
    rid = open_secure(clients, 3)
    commit(clients, rid, 1)
    closed = aggregator.wait_for_commitments(rid, seal_lead=0.25)
    info = clients[0].secure_view(rid).info
    gas: dict[str, int] = {}
    # Not every eligible node committed, so the seal waits for the deadline's second to end.
    assert aggregator._seal(rid, info, [], gas, closed=closed) == "sealed"
    sealed_at = clients[0].unmask_phase(rid).sealed_at
    assert clients[0].block_timestamp(sealed_at) > info.deadline
    assert time.time() >= info.deadline + 1


def test_a_seal_timed_by_a_clock_ahead_of_the_chains_waits_for_chain_time_and_reads_again(chain, aggregator):
    _, clients = chain
    rid = open_secure(clients, 3)
    commit(clients, rid, 1)
    info = clients[0].secure_view(rid).info
    # This machine's clock is ahead: it takes a deadline 30 s earlier for the chain's.
    ahead = replace(info, deadline=int(time.time()) - 30)
    assert aggregator._seal(rid, ahead, [], {}, closed=False) == "again"
    assert clients[0].block_timestamp() > info.deadline  # it waited for the deadline by chain time
    assert not clients[0].unmask_phase(rid).sealed
    assert aggregator._seal(rid, clients[0].secure_view(rid).info, [], {}, closed=True) == "sealed"
