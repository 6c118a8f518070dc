"""The aggregator's round loop against an in-memory chain (tests/unit/fakes.py) and a real store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedchain.aggregator import Aggregator
from fedchain.aggregator.compute import RoundContext, compute_round
from fedchain.chain.types import Commitment, RoundStatus
from fedchain.codec import UpdateIdentity, decode_json, decode_tensors, encode_update
from fedchain.errors import RpcUnavailable
from fedchain.errors import ConfigError
from fedchain.hashing import commitment
from fedchain.store import FilesystemStore
from fedchain.tasks.base import NodeData, Task

from fakes import FakeChain, account


class TinyTask(Task):
    name = "tiny"

    def default_params(self):
        return {"n": 3}

    def default_training(self):
        return {"epochs": 1, "batch_size": 4, "lr": 0.1}

    def build_model(self, params, seed):
        torch.manual_seed(seed)
        return torch.nn.Linear(params["n"], 1)

    def node_data(self, shard, num_shards, seed, params):
        g = torch.Generator().manual_seed(seed * 100 + shard)
        x = torch.randn(8, params["n"], generator=g)
        return NodeData(x=x, y=x.sum(dim=1, keepdim=True), meta={"shard": shard})

    def evaluate(self, model, data=None, *, seed=0, params=None):
        data = data or self.node_data(99, 100, seed, params or self.default_params())
        with torch.no_grad():
            return {"rmse": float(torch.sqrt(torch.mean((model(data.x) - data.y) ** 2)))}


class ChainAdapter(FakeChain):
    """FakeChain with ChainClient's write signatures; `on_open` plays the nodes."""

    on_open = None

    def __init__(self) -> None:
        super().__init__(grace_period=0)
        self.grace = self.__dict__.pop("grace_period")  # ChainClient exposes grace_period() as a call

    def grace_period(self):  # type: ignore[override]
        return self.grace

    def open_round(self, base, config, params):  # type: ignore[override]
        rid = super().open_round(base, config, params)
        tx = self._txs[self._log[-1].tx_hash].result
        if self.on_open:
            self.on_open(rid)
        return rid, tx

    def block_timestamp(self, block=None):  # type: ignore[override]
        """Chain time moves on while the aggregator polls (as blocks keep coming)."""
        self.now += 5
        return super().block_timestamp(block)

    def set_genesis_model(self, model_hash):  # type: ignore[override]
        return super().set_genesis_model(model_hash)


@pytest.fixture()
def setup(tmp_path):
    chain = ChainAdapter()
    nodes = [account(i) for i in (1, 2, 3)]
    for n in nodes:
        chain.admit_node(n.address)
    store = FilesystemStore(tmp_path / "blobs", fsync=False)
    task = TinyTask()
    agg = Aggregator(chain, store, task, task_spec="tiny", poll_interval=0.01, log=lambda m: None)
    return chain, store, task, agg, nodes


def _local_update(chain, store, rid, node, scale, upload=True, base_hash=None):
    """An update of ``node`` for round ``rid``: the base model scaled, naming its sender."""
    base_hash = base_hash or chain.get_round(rid).base_model_hash
    weights = {k: v * scale for k, v in decode_tensors(store.get(base_hash)).items()}
    data = encode_update(weights, UpdateIdentity(chain.chain_id, chain.rounds_address, rid, node))
    if upload:
        store.put(data)
    return commitment(data)


def test_round_merges_uploaded_updates_and_rejects_a_commitment_without_upload(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        base = chain.get_round(rid).base_model_hash
        chain.submit_update(rid, nodes[0].address, _local_update(chain, store, rid, nodes[0].address, 2.0), 100)
        chain.submit_update(rid, nodes[1].address, _local_update(chain, store, rid, nodes[1].address, 4.0), 300)
        chain.submit_update(rid, nodes[2].address, _local_update(chain, store, rid, nodes[2].address, 9.0, upload=False), 50)

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=300)
    assert summary.status == "finalized" and summary.accepted == 2 and summary.rejected == 1
    info = chain.get_round(1)
    assert info.status == RoundStatus.FINALIZED and info.global_model_hash == summary.global_model_hash
    model = decode_tensors(store.get(info.global_model_hash))
    genesis = decode_tensors(store.get(info.base_model_hash))
    for name in genesis:  # (100*2x + 300*4x) / 400 = 3.5x
        np.testing.assert_allclose(model[name], genesis[name] * 3.5, rtol=1e-6)
    report = decode_json(store.get(info.report_hash), max_bytes=1 << 20)
    rejected = [u for u in report["updates"] if not u["accepted"]]
    assert [u["node"] for u in rejected] == [nodes[2].address]
    assert rejected[0]["reason"].startswith("missing_upload")
    assert report["metrics"]["rmse"] == pytest.approx(summary.metrics["rmse"])
    assert sum(u["weight"] for u in report["updates"]) == pytest.approx(1.0)


def test_round_without_quorum_of_valid_updates_is_expired(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        base = chain.get_round(rid).base_model_hash
        chain.submit_update(rid, nodes[0].address, _local_update(chain, store, rid, nodes[0].address, 2.0), 10)
        chain.submit_update(rid, nodes[1].address, "0x" + "77" * 32, 10)  # never uploaded

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=60)
    assert summary.status == "expired" and summary.accepted == 1
    assert chain.get_round(1).status == RoundStatus.EXPIRED
    assert chain.latest_model_hash() == chain.genesis_model_hash()


def test_next_round_starts_from_the_last_finalized_model(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        base = chain.get_round(rid).base_model_hash
        for i, n in enumerate(nodes):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 1.0 + i), 10)

    chain.on_open = play
    first = agg.run_round(min_updates=3, round_seconds=300)
    second = agg.run_round(min_updates=3, round_seconds=300)
    assert chain.get_round(2).base_model_hash == first.global_model_hash
    assert second.global_model_hash != first.global_model_hash


def test_genesis_mismatch_without_the_blob_names_the_fix(setup, tmp_path):
    chain, store, task, agg, nodes = setup
    chain.set_genesis_model("0x" + "12" * 32)
    with pytest.raises(ConfigError) as err:
        agg.ensure_genesis()
    assert "--model-seed" in err.value.hint


def test_recomputation_is_bit_identical_and_order_independent(setup):
    chain, store, task, agg, nodes = setup
    base_hash = agg.ensure_genesis()
    base = decode_tensors(store.get(base_hash))
    cs = []
    for i, n in enumerate(nodes):
        h = _local_update(chain, store, 1, n.address, 1.0 + 0.37 * i, base_hash=base_hash)
        cs.append(Commitment(round_id=1, node=n.address, update_hash=h, num_samples=7 + i))
    fetch = lambda h: store.get(h) if store.has(h) else None  # noqa: E731
    ctx = RoundContext(chain.chain_id, chain.rounds_address, 1)
    a = compute_round({"strategy": {"name": "fedavg"}}, base, cs, fetch, ctx, min_updates=1)
    b = compute_round({"strategy": {"name": "fedavg"}}, base, cs[::-1], fetch, ctx, min_updates=1)
    assert a.model_bytes == b.model_bytes and a.model_hash == commitment(a.model_bytes)


def test_genesis_model_is_deterministic_for_a_seed(setup):
    _, _, task, _, _ = setup
    from fedchain.aggregator.service import genesis_model

    assert genesis_model(task, task.default_params(), 0) == genesis_model(task, task.default_params(), 0)
    assert genesis_model(task, task.default_params(), 0)[1] != genesis_model(task, task.default_params(), 1)[1]


def test_commitment_that_differs_from_the_nodes_upload_is_rejected_as_hash_mismatch(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    uploaded: dict[tuple[int, str], list[str]] = {}
    agg.uploads_lookup = lambda rid, node: uploaded.get((rid, node), [])

    def play(rid):
        base = chain.get_round(rid).base_model_hash
        for n in nodes[:2]:
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 2.0), 10)
        sent = _local_update(chain, store, rid, nodes[2].address, 3.0)  # what node 3 uploaded...
        uploaded[(rid, nodes[2].address)] = [sent]
        chain.submit_update(rid, nodes[2].address, _local_update(chain, store, rid, nodes[2].address, 5.0, upload=False), 10)

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=300)
    assert summary.status == "finalized" and summary.accepted == 2  # the others still merge
    reason = summary.reasons[nodes[2].address]
    assert reason.startswith("hash_mismatch") and uploaded[(1, nodes[2].address)][0] in reason


def test_each_committed_update_is_hashed_once_in_the_round_and_fedavg_gets_only_the_base_shapes(setup, monkeypatch):
    from fedchain.aggregator import compute as C
    from fedchain.aggregator import service as S
    from fedchain.store import base as store_base

    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    updates: set[str] = set()

    def play(rid):
        for i, n in enumerate(nodes):
            h = _local_update(chain, store, rid, n.address, 1.0 + i)
            updates.add(h)
            chain.submit_update(rid, n.address, h, 10)

    chain.on_open = play
    hashed: list[str] = []
    for module in (C, store_base):
        real = module.commitment
        monkeypatch.setattr(module, "commitment", lambda data, real=real, **k: hashed.append(real(data)) or real(data, **k))
    wait = agg.wait_for_commitments
    agg.wait_for_commitments = lambda rid: (wait(rid), hashed.clear())  # count from the end of the commit phase
    bases = []
    compute = S.compute_round
    monkeypatch.setattr(S, "compute_round", lambda config, base, *a, **k: bases.append(base) or compute(config, base, *a, **k))
    summary = agg.run_round(min_updates=3, round_seconds=300)
    assert summary.status == "finalized" and summary.accepted == 3
    assert sorted(h for h in hashed if h in updates) == sorted(updates)  # each once: the store's verified get
    assert isinstance(bases[0], C.ModelShapes)  # FedAvg reads no base values: the arrays are not held


def test_a_corrupted_stored_update_fails_the_round_loudly_instead_of_rejecting_its_node(setup):
    from fedchain.errors import HashMismatch

    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        for i, n in enumerate(nodes):
            h = _local_update(chain, store, rid, n.address, 1.0 + i)
            chain.submit_update(rid, n.address, h, 10)
            if i == 1:  # the aggregator's own disk flips a byte of an upload it had verified
                path = store.path(h)
                data = bytearray(path.read_bytes())
                data[-1] ^= 0x01
                path.write_bytes(bytes(data))

    chain.on_open = play
    with pytest.raises(HashMismatch, match="corrupted"):
        agg.run_round(min_updates=2, round_seconds=300)
    assert chain.get_round(1).status == RoundStatus.OPEN  # nothing finalized on corrupted input


def test_restarted_aggregator_resumes_its_open_round(setup, tmp_path):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    rid, _ = agg.open_round(min_updates=2, round_seconds=300)  # then the aggregator "crashes"
    base = chain.get_round(rid).base_model_hash
    for i, n in enumerate(nodes):
        chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 1.0 + i), 10)
    again = Aggregator(chain, store, task, task_spec="tiny", poll_interval=0.01, log=lambda m: None)
    summary = again.run_round(min_updates=3, round_seconds=300)
    assert summary.round == rid and summary.status == "finalized" and summary.accepted == 3
    assert chain.current_round_id() == rid  # no second round was opened
    assert chain.get_round(rid).min_updates == 2


def test_copied_commitment_is_rejected_as_not_own_update_even_when_the_copier_commits_first(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        honest = _local_update(chain, store, rid, nodes[0].address, 2.0)
        chain.submit_update(rid, nodes[1].address, honest, 500)  # the copier front-runs the owner
        chain.submit_update(rid, nodes[0].address, honest, 100)
        chain.submit_update(rid, nodes[2].address, _local_update(chain, store, rid, nodes[2].address, 4.0), 100)

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=300)
    assert summary.status == "finalized" and summary.accepted == 2
    assert summary.reasons[nodes[1].address].startswith("not_own_update")
    assert nodes[0].address not in summary.reasons  # the owner is accepted


def test_later_committer_of_a_missing_blob_is_a_duplicate_update(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()

    def play(rid):
        chain.submit_update(rid, nodes[0].address, _local_update(chain, store, rid, nodes[0].address, 2.0), 10)
        chain.submit_update(rid, nodes[1].address, _local_update(chain, store, rid, nodes[1].address, 3.0), 10)
        ghost = "0x" + "66" * 32
        chain.submit_update(rid, nodes[2].address, ghost, 10)
        chain.admit_node(account(4).address)  # (eligible only next round)
        with pytest.raises(Exception):
            chain.submit_update(rid, account(4).address, ghost, 10)

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=300)
    assert summary.reasons[nodes[2].address].startswith("missing_upload")


def test_round_config_commits_every_result_affecting_limit(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    agg.max_samples, agg.max_blob_bytes = 777, 4096
    rid, opened = agg.open_round(min_updates=1, round_seconds=300)
    config = decode_json(store.get(chain.get_round(rid).config_hash), max_bytes=1 << 20)
    assert config["max_samples"] == 777 and config["limits"]["max_update_bytes"] == 4096
    assert chain.get_round(rid).max_samples == 777  # and the contract enforces the cap
    with pytest.raises(Exception) as e:
        chain.submit_update(rid, nodes[0].address, "0x" + "12" * 32, 778)
    assert getattr(e.value, "name", "") == "TooManySamples"


def test_round_loop_survives_an_rpc_outage_and_reports_degraded(setup):
    chain, store, task, agg, nodes = setup
    statuses = []
    agg.on_status = lambda state, detail: statuses.append(state)
    calls = {"n": 0}
    real = agg.run_round

    def flaky(**kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RpcUnavailable("http://chain", "connection refused")
        return real(**kw)

    agg.run_round = flaky  # type: ignore[method-assign]

    def play(rid):
        for i, n in enumerate(nodes):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 1.0 + i), 10)

    chain.on_open = play
    out = agg.run(rounds=1, min_updates=3, round_seconds=300, sleep=lambda s: None)
    assert [s.status for s in out] == ["finalized"] and statuses == ["degraded", "ok"]


def test_learning_rate_schedule_is_written_into_each_round_config(setup):
    from fedchain.aggregator.config import parse_schedule, scheduled_lr

    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    agg.lr_schedule = parse_schedule("cosine:4:0.01")
    rid, opened = agg.open_round(min_updates=1, round_seconds=300)
    assert opened["config"]["training"]["lr"] == pytest.approx(0.1)  # round 1 of a cosine from 0.1
    assert scheduled_lr(0.1, agg.lr_schedule, 3) == pytest.approx(0.01 + 0.09 * 0.5)  # cos(pi/2) = 0
    assert scheduled_lr(0.1, agg.lr_schedule, 9) == pytest.approx(0.01)
    with pytest.raises(ConfigError):
        parse_schedule("cosine:zero")



def test_stateful_strategy_state_is_stored_named_in_the_report_and_fed_to_the_next_round(setup, monkeypatch):
    from fedchain.strategy import STRATEGIES, StepResult
    from fedchain.strategy.base import Strategy, ordered_updates

    class Momentum(Strategy):
        name = "test_momentum"
        stateful = True

        def step(self, base, updates, state=None):
            ordered = ordered_updates(updates)
            delta = {k: np.mean([u.weights[k] - base[k] for u in ordered], axis=0).astype(np.float32)
                     for k in sorted(base)}
            m = {k: delta[k] + (0.5 * state["m." + k] if state else 0) for k in delta}
            return StepResult(model={k: (base[k] + m[k]).astype(np.float32) for k in base},
                              weights={u.node: 1 / len(ordered) for u in ordered},
                              state={"m." + k: np.asarray(v, np.float32) for k, v in m.items()},
                              details={"rounds_seen": int(state is not None)})

        def weights(self, updates):
            return {u.node: 1 / len(updates) for u in updates}

    monkeypatch.setitem(STRATEGIES, "test_momentum", Momentum)
    chain, store, task, agg, nodes = setup
    agg.strategy = {"name": "test_momentum", "params": {}}
    agg.ensure_genesis()

    def play(rid):
        for i, n in enumerate(nodes):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 1.0 + i), 10)

    chain.on_open = play
    first = agg.run_round(min_updates=3, round_seconds=300)
    report1 = decode_json(store.get(first.report_hash), max_bytes=1 << 20)
    assert report1["server_state_hash"] and store.has(report1["server_state_hash"])
    assert report1["strategy_details"] == {"rounds_seen": 0}
    second = agg.run_round(min_updates=3, round_seconds=300)
    config2 = decode_json(store.get(chain.get_round(2).config_hash), max_bytes=1 << 20)
    assert config2["strategy"]["state_hash"] == report1["server_state_hash"]  # committed input
    report2 = decode_json(store.get(second.report_hash), max_bytes=1 << 20)
    assert report2["strategy_details"] == {"rounds_seen": 1}


def test_round_a_robust_rule_cannot_merge_expires_with_the_reason(setup):
    from fedchain.strategy import get_strategy

    chain, store, task, agg, nodes = setup
    agg.strategy = {"name": "krum", "params": get_strategy("krum", {"f": 2}).params}  # needs n > 2f + 2 = 6
    agg.ensure_genesis()

    def play(rid):
        for i, n in enumerate(nodes):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 1.0 + i), 10)

    chain.on_open = play
    summary = agg.run_round(min_updates=3, round_seconds=60)
    assert summary.status == "expired" and summary.accepted == 3
    assert chain.get_round(1).status == RoundStatus.EXPIRED


def test_bucketing_seed_comes_from_the_round_seed(setup):
    from fedchain.strategy import get_strategy

    chain, store, task, agg, nodes = setup
    params = get_strategy("median", {"pre": [{"name": "bucketing", "s": 2}]}).params
    agg.strategy = {"name": "median", "params": params}
    agg.ensure_genesis()
    rid, opened = agg.open_round(min_updates=1, round_seconds=300)
    assert opened["config"]["strategy"]["params"]["seed"] == opened["config"]["seed"]


def test_secure_aggregator_refuses_to_open_a_round_that_could_pass_the_privacy_budget(setup):
    from fedchain.aggregator.config import SecureSettings
    from fedchain.privacy import PrivacyBudgetExceeded

    chain, store, task, _, nodes = setup
    agg = Aggregator(chain, store, task, task_spec="tiny", poll_interval=0.01, log=lambda m: None,
                     secure=SecureSettings(clip=1.0, scale_bits=16, noise_multiplier=0.5), privacy_budget=1.0)
    agg.ensure_genesis()
    with pytest.raises(PrivacyBudgetExceeded) as exc:
        agg.open_round(min_updates=2, round_seconds=60)
    assert exc.value.reason == "privacy_budget_exceeded" and "budget" in exc.value.message
    assert chain.current_round_id() == 0  # nothing was opened
    roomy = Aggregator(chain, store, task, task_spec="tiny", poll_interval=0.01, log=lambda m: None,
                       secure=SecureSettings(clip=1.0, scale_bits=16, noise_multiplier=0.5), privacy_budget=1e6)
    rid, opened = roomy.open_round(min_updates=2, round_seconds=60)
    config = opened["config"]
    assert rid == 1 and config["mode"] == "secure" and config["secure"]["threshold"] == 2  # majority of 3
    assert config["privacy"]["budget"] == 1e6 and config["privacy"]["state_hash"] is None


def test_secure_aggregator_refuses_a_robust_strategy_and_says_why(setup):
    from fedchain.aggregator.config import SecureSettings

    chain, store, task, _, _ = setup
    with pytest.raises(ConfigError, match="robust rules need each node's update"):
        Aggregator(chain, store, task, task_spec="tiny", strategy="median", secure=SecureSettings(), log=lambda m: None)


def test_round_loop_pushes_open_and_finalized_events_as_its_transactions_are_mined(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    events = []
    agg.on_event = lambda rid, status: events.append((rid, status, chain.get_round(rid).status))

    def play(rid):
        for i, n in enumerate(nodes[:2]):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 2.0 + i), 10)

    chain.on_open = play
    assert agg.run_round(min_updates=2, round_seconds=300).status == "finalized"
    # each event follows its transaction: the chain already shows what the event says
    assert events == [(1, "open", RoundStatus.OPEN), (1, "finalized", RoundStatus.FINALIZED)]


def test_a_failing_event_push_does_not_stop_the_round(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    logged = []
    agg.log = logged.append
    agg.on_event = lambda rid, status: (_ for _ in ()).throw(RuntimeError("hub gone"))

    def play(rid):
        for i, n in enumerate(nodes[:2]):
            chain.submit_update(rid, n.address, _local_update(chain, store, rid, n.address, 2.0 + i), 10)

    chain.on_open = play
    assert agg.run_round(min_updates=2, round_seconds=300).status == "finalized"
    assert any("could not push the 'open' event: hub gone" in m for m in logged)


def test_with_a_close_window_a_round_missing_a_dropped_node_closes_before_its_deadline(setup):
    """Two of three nodes commit (the quorum) and the third never does: the contract brings the
    deadline forward by the close window, and the loop finalizes without waiting the deadline."""
    chain, store, task, _, nodes = setup
    agg = Aggregator(chain, store, task, task_spec="tiny", poll_interval=0.01, relay_cutoff=5, close_window=20,
                     log=lambda m: None)
    agg.ensure_genesis()

    opened = []

    def play(rid):
        opened.append(chain.now)
        for node, scale in zip(nodes[:2], (2.0, 4.0)):
            chain.submit_update(rid, node.address, _local_update(chain, store, rid, node.address, scale), 100)

    chain.on_open = play
    summary = agg.run_round(min_updates=2, round_seconds=3600)
    info = chain.get_round(1)
    assert summary.status == "finalized" and summary.accepted == 2
    config = decode_json(store.get(info.config_hash), max_bytes=1 << 20)
    assert config["close_window"] == 20 and info.close_window == 20
    brought = [e for e in chain._log if e.name == "DeadlineBroughtForward"]
    assert [e.args["deadline"] for e in brought] == [info.deadline]
    assert info.deadline <= opened[0] + 12 * 2 + 20 + 12  # the quorum's block time + the window
    assert chain.now < opened[0] + 3600  # finalized long before the deadline it opened with


def test_a_close_window_not_above_the_relay_cutoff_is_refused_with_the_fix(setup):
    chain, store, task, _, _ = setup
    with pytest.raises(ConfigError, match="must exceed the relay cut-off") as e:
        Aggregator(chain, store, task, task_spec="tiny", relay_cutoff=5, close_window=5, log=lambda m: None)
    assert "--close-window 6" in (e.value.hint or "")


def test_without_a_close_window_the_config_has_none_and_the_deadline_stays(setup):
    chain, store, task, agg, nodes = setup
    agg.ensure_genesis()
    rid, _ = agg.open_round(min_updates=1, round_seconds=300)
    deadline = chain.get_round(rid).deadline
    chain.submit_update(rid, nodes[0].address, "0x" + "12" * 32, 10)
    assert "close_window" not in decode_json(store.get(chain.get_round(rid).config_hash), max_bytes=1 << 20)
    assert chain.get_round(rid).deadline == deadline
