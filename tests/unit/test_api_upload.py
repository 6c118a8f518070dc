"""PUT /rounds/{round}/updates/{blob_hash}: the signed upload and every way it is refused."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from fakes import account, make_world, model_bytes, model_tensors
from fedchain.codec import encode_tensors
from fedchain.hashing import commitment

MAX = 64 * 1024


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path, max_blob_bytes=MAX)


def err(r, status: int, reason: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "reason", "detail", "hint"}
    assert body["reason"] == reason, body
    assert "Traceback" not in r.text
    return body


def update() -> bytes:
    return model_bytes(2.5)


def with_nan() -> bytes:
    """A canonical file whose last float is NaN (encode_tensors refuses NaN, so patch the bytes)."""
    data = bytearray(update())
    data[-4:] = np.array([np.nan], dtype="<f4").tobytes()
    return bytes(data)


def raw_safetensors(header: dict, data: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + data


# --- success ---------------------------------------------------------------------------------------
def test_upload_from_active_node_is_stored_and_recorded(world):
    data = update()
    r = world.put(1, data)
    assert r.status_code == 201, r.text
    h = commitment(data)
    assert r.json() == {"round": 1, "node": world.nodes[0].address, "blob_hash": h, "size": len(data)}
    assert world.store.get(h) == data
    assert world.indexer.uploads_for(1, world.nodes[0].address) == [h]
    got = world.client.get(f"/blobs/{h}")
    assert got.status_code == 200 and got.content == data


def test_reupload_of_the_same_blob_is_idempotent(world):
    data = update()
    first = world.put(1, data)
    again = world.put(1, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


def test_upload_accepts_uppercase_hash_and_unprefixed_signature(world):
    data = update()
    h = commitment(data)
    sig = world.sign(world.nodes[0], 1, h)
    r = world.put(1, data, blob_hash="0x" + h[2:].upper(), signature=sig[2:])
    assert r.status_code == 201, r.text
    assert r.json()["blob_hash"] == h


def test_nodes_upload_independently(world):
    for i, node in enumerate(world.nodes):
        assert world.put(1, model_bytes(3.0 + i), node).status_code == 201


# --- 401 ---------------------------------------------------------------------------------------------
def test_upload_rejects_unsigned_request(world):
    body = err(world.put(1, update(), signed=False), 401, "missing_signature")
    assert "X-Fedchain-Signature" in body["hint"]
    assert not world.store.has(commitment(update()))


@pytest.mark.parametrize("sig", ["0xnothex", "0x" + "11" * 64, "deadbeef"])
def test_upload_rejects_garbled_signature(world, sig):
    err(world.put(1, update(), signature=sig), 401, "bad_signature")


def test_upload_rejects_well_formed_but_unrecoverable_signature(world):
    err(world.put(1, update(), signature="0x" + "11" * 64 + "63"), 401, "bad_signature")


# --- 403 ---------------------------------------------------------------------------------------------
def test_upload_rejects_signature_by_non_node(world):
    stranger = account(99)
    body = err(world.put(1, update(), stranger), 403, "not_active_node")
    assert stranger.address in body["detail"]
    assert not world.store.has(commitment(update()))


def test_upload_rejects_removed_node(world):
    world.chain.remove_node(world.nodes[0].address)
    err(world.put(1, update()), 403, "not_active_node")


def test_upload_rejects_signature_replayed_for_another_round(world):
    data = update()
    h = commitment(data)
    sig_for_round_2 = world.sign(world.nodes[0], 2, h)
    err(world.put(1, data, signature=sig_for_round_2), 403, "not_active_node")


def test_upload_rejects_signature_replayed_for_another_chain(world):
    data = update()
    sig = world.sign(world.nodes[0], 1, commitment(data), chain_id=1)
    err(world.put(1, data, signature=sig), 403, "not_active_node")


def test_upload_rejects_signature_replayed_for_another_contract(world):
    data = update()
    sig = world.sign(world.nodes[0], 1, commitment(data), contract="0x" + "77" * 20)
    err(world.put(1, data, signature=sig), 403, "not_active_node")


def test_upload_rejects_signature_replayed_for_another_blob(world):
    sig = world.sign(world.nodes[0], 1, commitment(model_bytes(9.0)))
    err(world.put(1, update(), signature=sig), 403, "not_active_node")


# --- 413 ---------------------------------------------------------------------------------------------
def test_upload_rejects_oversize_body(world):
    big = encode_tensors({"w": np.ones(MAX // 4 + 10, dtype=np.float32)})
    assert len(big) > MAX
    err(world.put(1, big), 413, "too_large")
    assert not world.store.has(commitment(big))


def test_upload_rejects_oversize_streamed_body_without_content_length(world):
    big = b"\0" * (MAX + 1)
    h = commitment(big)

    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    r = world.client.put(
        f"/rounds/1/updates/{h}", content=chunks(), headers={"X-Fedchain-Signature": world.sign(world.nodes[0], 1, h)}
    )
    err(r, 413, "too_large")


def test_upload_rejects_oversize_content_length_before_reading_the_body(world):
    """Straight ASGI: a declared Content-Length over the limit is refused without one receive()."""
    h = commitment(b"x")
    received = []
    sent = []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": f"/rounds/1/updates/{h}",
        "raw_path": f"/rounds/1/updates/{h}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-length", str(10**10).encode()),
            (b"x-fedchain-signature", world.sign(world.nodes[0], 1, h).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "app": world.app,
    }
    asyncio.run(world.app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert received == []


def test_signature_is_checked_before_size(world):
    big = b"\0" * (MAX + 1)
    err(world.put(1, big, signed=False), 401, "missing_signature")


# --- 400 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0x1234", "z" * 64, "0x" + "g" * 64])
def test_upload_rejects_malformed_blob_hash(world, bad):
    err(world.put(1, update(), blob_hash=bad, signature="0x" + "11" * 65), 400, "bad_hash")


def test_upload_rejects_body_that_does_not_hash_to_the_name(world):
    claimed = commitment(model_bytes(7.0))
    body = err(world.put(1, update(), blob_hash=claimed), 400, "hash_mismatch")
    assert body["error"] == "HashMismatch"
    assert not world.store.has(claimed) and not world.store.has(commitment(update()))


def test_signer_is_checked_before_the_body_is_hashed(world):
    """A non-node is refused from the URL and header alone: it cannot make us read or hash a body."""
    claimed = commitment(model_bytes(7.0))
    err(world.put(1, update(), account(99), blob_hash=claimed), 403, "not_active_node")


def test_node_upload_whose_body_does_not_match_the_url_hash_is_rejected(world):
    claimed = commitment(model_bytes(7.0))
    err(world.put(1, update(), blob_hash=claimed), 400, "hash_mismatch")


# --- 404 / 409 ---------------------------------------------------------------------------------------
def test_upload_rejects_unknown_round(world):
    err(world.put(5, update()), 404, "unknown_round")


def test_upload_rejects_finalized_round(world):
    world.chain.submit_update(1, world.nodes[1].address, "0x" + "cd" * 32, 10)
    new = world.store.put(model_bytes(5.0))
    world.chain.finalize_round(1, new, "0x" + "ef" * 32, 1)
    err(world.put(1, update()), 409, "round_not_open")


def test_upload_rejects_expired_round(world):
    world.chain.expire_round(1)
    err(world.put(1, update()), 409, "round_not_open")


def test_upload_rejects_a_second_different_blob_from_the_same_node(world):
    assert world.put(1, update()).status_code == 201
    body = err(world.put(1, model_bytes(8.0)), 409, "duplicate")
    assert commitment(update()) in body["detail"]
    assert not world.store.has(commitment(model_bytes(8.0)))


def test_upload_rejects_blob_other_than_the_on_chain_commitment(world):
    world.chain.submit_update(1, world.nodes[0].address, commitment(model_bytes(6.0)), 10)
    err(world.put(1, update()), 409, "duplicate")
    assert world.put(1, model_bytes(6.0)).status_code == 201


# --- 422 ---------------------------------------------------------------------------------------------
def test_upload_rejects_truncated_safetensors(world):
    body = err(world.put(1, update()[:-7]), 422, "malformed")
    assert body["error"] == "InvalidBlob"


def test_upload_rejects_garbage(world):
    err(world.put(1, b"this is not a tensor file at all"), 422, "malformed")


def test_upload_rejects_nan(world):
    err(world.put(1, with_nan()), 422, "non_finite")
    assert not world.store.has(commitment(with_nan()))


def test_upload_rejects_wrong_tensor_names(world):
    t = model_tensors(2.0)
    t["layer.extra"] = t.pop("layer.bias")
    body = err(world.put(1, encode_tensors(t)), 422, "wrong_names")
    assert "layer.bias" in body["detail"]


def test_upload_rejects_wrong_shape(world):
    t = model_tensors(2.0)
    t["layer.weight"] = t["layer.weight"].reshape(3, 2)
    err(world.put(1, encode_tensors(t)), 422, "wrong_shape")


def test_upload_rejects_wrong_dtype(world):
    data = raw_safetensors({"layer.bias": {"data_offsets": [0, 24], "dtype": "F64", "shape": [3]}}, b"\0" * 24)
    err(world.put(1, data), 422, "wrong_dtype")


def test_validation_follows_the_rounds_base_model(world):
    """After round 1 the spec comes from round 2's base model (the same shapes here, cached)."""
    assert world.put(1, update()).status_code == 201
    world.chain.submit_update(1, world.nodes[0].address, commitment(update()), 10)
    new = world.store.put(model_bytes(3.0))
    world.chain.finalize_round(1, new, "0x" + "ef" * 32, 1)
    world.model_hash = new
    rid = world.open_round()
    assert world.put(rid, model_bytes(4.0)).status_code == 201
    err(world.put(rid, with_nan(), world.nodes[1]), 422, "non_finite")


def test_missing_base_model_is_a_503_not_a_client_error(world):
    world.store.delete(world.model_hash)
    err(world.put(1, update()), 503, "base_model_missing")


def test_chain_down_during_upload_is_503(world):
    world.chain.down = True
    err(world.put(1, update()), 503, "rpc_unavailable")
