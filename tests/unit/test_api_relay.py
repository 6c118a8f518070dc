"""POST /rounds/{round}/commitments: a gasless node's signed commitment, queued for submitBatch."""

from __future__ import annotations

import pytest

from fakes import account, make_world, model_bytes, model_tensors
from fedchain.aggregator.relay import RelayQueue
from fedchain.auth import sign_commitment
from fedchain.codec import UpdateIdentity, encode_json, encode_update
from fedchain.hashing import commitment

CUTOFF = 60
MAX_SAMPLES = 1000


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, open_round=False)
    config_hash = w.store.put(encode_json({"version": 2, "relay": {"cutoff_seconds": CUTOFF}}))
    w.chain.open_round(w.model_hash, config_hash, w.chain.now + 3600, 1, max_samples=MAX_SAMPLES, relay_cutoff=CUTOFF)
    return w


def upload(world, node, rid: int = 1) -> str:
    data = encode_update(model_tensors(2.0 + rid), UpdateIdentity(world.chain.chain_id, world.chain.rounds_address,
                                                                 rid, node.address))
    assert world.put(rid, data, node).status_code == 201
    return commitment(data)


def post(world, node, h: str, samples: int = 100, rid: int = 1, signature: str | None = None):
    sig = signature or sign_commitment(node, world.chain.chain_id, world.chain.rounds_address, rid, h, samples)
    return world.client.post(f"/rounds/{rid}/commitments",
                             json={"update_hash": h, "num_samples": samples, "signature": sig})


def err(r, status: int, reason: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "reason", "detail", "hint"} and body["reason"] == reason, body
    return body


def test_relayed_commitment_is_queued_with_202(world):
    node = world.nodes[0]
    h = upload(world, node)
    r = post(world, node, h)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["node"] == node.address and body["update_hash"] == h and body["num_samples"] == 100
    assert body["relay_closes_at"] == world.chain._rounds[1].deadline - CUTOFF
    assert len(world.app.state.relay) == 1


def test_queued_entries_are_what_submit_batch_accepts(world):
    hashes = {n.address: upload(world, n) for n in world.nodes}
    for n in world.nodes:
        assert post(world, n, hashes[n.address]).status_code == 202
    batch = world.app.state.relay.take(1)
    assert [e.node for e in batch] == sorted((n.address for n in world.nodes), key=str.lower)
    world.chain.submit_batch(1, [(e.update_hash, e.num_samples, e.signature) for e in batch])
    for n in world.nodes:
        assert world.chain.get_commitment(1, n.address).update_hash == hashes[n.address]


def test_create_app_takes_the_relay_queue_the_round_loop_drains(tmp_path):
    from fedchain.api import create_app

    queue = RelayQueue()
    w = make_world(tmp_path)
    app = create_app(w.settings, chain=w.chain, store=w.store, indexer=w.indexer, background_sync=False, relay=queue)
    assert app.state.relay is queue


def test_relay_after_deadline_minus_cutoff_is_409_relay_closed(world):
    node = world.nodes[0]
    h = upload(world, node)
    world.chain.now = world.chain._rounds[1].deadline - CUTOFF + 1
    body = err(post(world, node, h), 409, "relay_closed")
    assert "submitUpdate" in body["hint"]
    assert len(world.app.state.relay) == 0


def test_relay_requires_an_eligible_signer(world):
    stranger = account(90)
    h = upload(world, world.nodes[0])
    err(post(world, stranger, h), 403, "not_eligible")


def test_relay_refuses_too_many_samples(world):
    node = world.nodes[0]
    h = upload(world, node)
    err(post(world, node, h, samples=MAX_SAMPLES + 1), 422, "too_many_samples")
    assert post(world, node, h, samples=MAX_SAMPLES).status_code == 202


def test_relay_requires_that_the_node_uploaded_that_blob(world):
    a, b = world.nodes[0], world.nodes[1]
    ha = upload(world, a)
    err(post(world, b, ha), 409, "not_uploaded")  # a copy of another node's hash
    err(post(world, a, commitment(model_bytes(9.0))), 409, "not_uploaded")


def test_relay_refuses_a_node_that_already_committed(world):
    node = world.nodes[0]
    h = upload(world, node)
    world.chain.submit_update(1, node.address, h, 100)
    err(post(world, node, h), 409, "already_committed")


def test_relay_signature_for_other_samples_recovers_to_a_stranger(world):
    node = world.nodes[0]
    h = upload(world, node)
    sig = sign_commitment(node, world.chain.chain_id, world.chain.rounds_address, 1, h, 100)
    err(post(world, node, h, samples=999, signature=sig), 403, "not_eligible")


def test_unrecoverable_relay_signature_is_401(world):
    h = upload(world, world.nodes[0])
    err(post(world, world.nodes[0], h, signature="0x" + "00" * 64), 401, "bad_signature")


def test_relay_for_unknown_or_closed_round(world):
    node = world.nodes[0]
    h = upload(world, node)
    err(post(world, node, h, rid=9), 404, "unknown_round")
    world.chain.warp_past(1, grace=True)
    world.chain.expire_round(1)
    err(post(world, node, h), 409, "round_not_open")


@pytest.mark.parametrize("body", [
    {},
    {"update_hash": "0x12", "num_samples": 1, "signature": "0x" + "00" * 64},
    {"update_hash": "0x" + "12" * 32, "num_samples": 0, "signature": "0x" + "00" * 64},
    {"update_hash": "0x" + "12" * 32, "num_samples": 2**64, "signature": "0x" + "00" * 64},
    {"update_hash": "0x" + "12" * 32, "num_samples": 1, "signature": "0x" + "00" * 65},
    {"update_hash": "0x" + "12" * 32, "num_samples": 1, "signature": "0x" + "00" * 64, "extra": 1},
])
def test_malformed_body_is_422_invalid_request_in_the_error_shape(world, body):
    err(world.client.post("/rounds/1/commitments", json=body), 422, "invalid_request")


@pytest.mark.parametrize("raw", [b"\xff\x00not json", "s\u00e9c\u00ff\u0091".encode("latin-1"), b"[1,"])
def test_undecodable_body_is_422_invalid_request(world, raw):
    r = world.client.post("/rounds/4605742329/commitments", content=raw, headers={"Content-Type": "application/json"})
    err(r, 422, "invalid_request")


def test_full_queue_is_503_relay_full(world):
    world.app.state.relay = RelayQueue(max_entries=0)
    node = world.nodes[0]
    err(post(world, node, upload(world, node)), 503, "relay_full")
