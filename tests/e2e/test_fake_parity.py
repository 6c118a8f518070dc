"""The unit tests' FakeChain (tests/unit/fakes.py) against the real TrainingRounds on anvil.

One scenario runs on both, step for step: a refused opening, a round with a close window,
direct and relayed commitments, refused ones, the quorum bringing the deadline forward, an early
finalization refused, a late commitment refused, and the finalization. After each step the two
must agree on what was emitted (event names and arguments), on what was refused (the custom
error's name), and on the round as ``get_round`` reads it. The fake is given the real chain id
and contract address, so the accumulators must agree to the bit. Times differ (the fake's clock
moves 12 s a block, anvil's with the wall clock), so deadlines are compared to each chain's own
block times.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import pytest

from fedchain.auth import sign_commitment
from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundParams
from fedchain.errors import ContractRevert
from fedchain.settings import REPO_ROOT
from harness import deploy_dev_chain, stop_all

sys.path.insert(0, str(REPO_ROOT / "tests" / "unit"))
from fakes import FakeChain  # noqa: E402

NODES = (1, 2, 3)
WINDOW, CUTOFF, ROUND = 100, 5, 600
CONFIG = "0x" + "c0" * 32


class Real:
    """The real contract through ChainClient: one client per account."""

    def __init__(self, dev) -> None:
        self.dev = dev
        self.agg = ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                                       account=dev_account(0))  # admin and aggregator
        self.nodes = {i: ChainClient.connect(dev.rpc_url, deployments_dir=dev.deployments_dir, repo_root=REPO_ROOT,
                                             account=dev_account(i)) for i in NODES}

    def now(self) -> int:
        return self.agg.block_timestamp()

    def block_time(self, tx) -> int:
        return self.agg.block_timestamp(tx.block_number)

    def open(self, params: RoundParams):
        return self.agg.open_round(self.agg.latest_model_hash(), CONFIG, params)[1]

    def commit(self, rid: int, i: int, h: str, samples: int):
        return self.nodes[i].submit_update(rid, h, samples)

    def batch(self, rid: int, signed):
        return self.agg.submit_batch(rid, signed)

    def finalize(self, rid: int, accepted: int):
        return self.agg.finalize_round(rid, "0x" + "ab" * 32, "0x" + "cd" * 32, accepted)

    def warp(self, seconds: int) -> None:
        w3 = self.agg.w3
        assert "error" not in w3.provider.make_request("evm_increaseTime", [seconds])
        assert "error" not in w3.provider.make_request("evm_mine", [])


class Fake:
    """FakeChain set up as the deployment is: the same addresses, genesis and members."""

    def __init__(self, real: Real) -> None:
        self.chain = FakeChain(chain_id=real.agg.chain_id, rounds_address=real.agg.rounds_address)
        for i in NODES:
            self.chain.admit_node(dev_account(i).address)
        self.chain.set_genesis_model(real.agg.latest_model_hash())

    def now(self) -> int:
        return self.chain.now

    def block_time(self, tx) -> int:
        return self.chain.now  # every write mines one block at the new time

    def open(self, params: RoundParams):
        self.chain.open_round(self.chain.latest_model_hash(), CONFIG, params)
        return self.chain.receipt(self.chain._log[-1].tx_hash)

    def commit(self, rid: int, i: int, h: str, samples: int):
        return self.chain.submit_update(rid, dev_account(i).address, h, samples)

    def batch(self, rid: int, signed):
        return self.chain.submit_batch(rid, signed)

    def finalize(self, rid: int, accepted: int):
        return self.chain.finalize_round(rid, "0x" + "ab" * 32, "0x" + "cd" * 32, accepted)

    def warp(self, seconds: int) -> None:
        self.chain.now += seconds


def _norm(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def events(tx, *, drop: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    """(name, args) of each event; a struct argument (web3 decodes RoundOpened.params as a
    mapping of its components, the fake keeps a tuple) as the list of its values, in ABI order."""
    out = []
    for e in tx.events:
        args = {k: (list(v.values()) if hasattr(v, "values") else v) for k, v in e.args.items() if k not in drop}
        out.append((e.name, {k: _norm(v) for k, v in args.items()}))
    return out


def outcome(step: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", step()
    except ContractRevert as exc:
        return "reverted", exc.name


def round_fields(info) -> dict:
    keep = ("min_updates", "commit_count", "accepted_count", "status", "eligible_count", "max_samples",
            "selection_rate", "relay_cutoff", "close_window", "accumulator", "config_hash", "base_model_hash",
            "global_model_hash", "report_hash")
    return {k: _norm(getattr(info, k)) for k in keep}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    dev = deploy_dev_chain(tmp_path_factory.mktemp("parity"), NODES)
    try:
        real = Real(dev)
        yield real, Fake(real)
    finally:
        stop_all([dev.anvil])


def test_fake_chain_matches_the_contract_through_a_round_with_a_close_window(both):
    real, fake = both

    def each(step: Callable[[Any], Any]) -> tuple[Any, Any]:
        return outcome(lambda: step(real)), outcome(lambda: step(fake))

    def params(side, **kw) -> RoundParams:
        return RoundParams(deadline=side.now() + ROUND, min_updates=2, max_samples=1000, relay_cutoff=CUTOFF, **kw)

    # 1. A close window that does not exceed the relay cut-off is refused, by name.
    r, f = each(lambda s: s.open(params(s, close_window=CUTOFF)))
    assert r == f == ("reverted", "InvalidCloseWindow")

    # 2. The round opens; the event carries the same parameters (deadlines: each chain's own).
    r, f = each(lambda s: s.open(params(s, close_window=WINDOW)))
    assert r[0] == f[0] == "ok"
    (rn, ra), (fn, fa) = events(r[1])[0], events(f[1])[0]
    assert rn == fn == "RoundOpened"
    assert ra["params"][1:] == fa["params"][1:] == [2, 1000, 0, CUTOFF, 0, 0, WINDOW]
    assert {k: v for k, v in ra.items() if k != "params"} == {k: v for k, v in fa.items() if k != "params"}
    rid = int(ra["roundId"])
    opened = {id(s): s_.get_round(rid).deadline for s, s_ in ((real, real.agg), (fake, fake.chain))}
    assert round_fields(real.agg.get_round(rid)) == round_fields(fake.chain.get_round(rid))

    # 3. One direct commitment: below the quorum, the deadline stays.
    r, f = each(lambda s: s.commit(rid, 1, "0x" + "11" * 32, 100))
    assert events(r[1]) == events(f[1]) and [e[0] for e in events(r[1])] == ["UpdateSubmitted"]
    assert real.agg.get_round(rid).deadline == opened[id(real)]

    # 4. Refused commitments: twice by one node, too many samples, a zero hash.
    for step in (lambda s: s.commit(rid, 1, "0x" + "12" * 32, 100),
                 lambda s: s.commit(rid, 2, "0x" + "22" * 32, 1001),
                 lambda s: s.commit(rid, 2, "0x" + "00" * 32, 10)):
        r, f = each(step)
        assert r[0] == f[0] == "reverted" and r[1] == f[1], (r, f)

    # 5. A relayed batch (one good entry, one duplicate) reaches the quorum: the deadline comes forward.
    def batch(s):
        c, a = real.agg.chain_id, real.agg.rounds_address
        return s.batch(rid, [("0x" + "22" * 32, 200, sign_commitment(dev_account(2), c, a, rid, "0x" + "22" * 32, 200)),
                             ("0x" + "13" * 32, 5, sign_commitment(dev_account(1), c, a, rid, "0x" + "13" * 32, 5))])
    r, f = each(batch)
    assert r[0] == f[0] == "ok"
    re_, fe = events(r[1], drop=("deadline",)), events(f[1], drop=("deadline",))
    assert re_ == fe and [e[0] for e in re_] == ["UpdateSubmitted", "CommitmentSkipped", "DeadlineBroughtForward"]
    for side, tx, ch in ((real, r[1], real.agg), (fake, f[1], fake.chain)):
        closes = side.block_time(tx) + WINDOW - 1
        assert [e.args["deadline"] for e in tx.events if e.name == "DeadlineBroughtForward"] == [closes]
        assert ch.get_round(rid).deadline == closes < opened[id(side)]
    assert round_fields(real.agg.get_round(rid)) == round_fields(fake.chain.get_round(rid))

    # 6. Finalizing before the (new) deadline is refused; after it, a commitment is refused and
    #    the finalization goes through, with the same event and the same round.
    r, f = each(lambda s: s.finalize(rid, 2))
    assert r == f == ("reverted", "CommitPhaseOpen")
    for side in (real, fake):
        side.warp(WINDOW + 2)
    r, f = each(lambda s: s.commit(rid, 3, "0x" + "33" * 32, 10))
    assert r == f == ("reverted", "DeadlinePassed")
    r, f = each(lambda s: s.finalize(rid, 2))
    assert r[0] == f[0] == "ok" and events(r[1]) == events(f[1])
    assert round_fields(real.agg.get_round(rid)) == round_fields(fake.chain.get_round(rid))
    assert real.agg.get_round(rid).status.label == "finalized"

