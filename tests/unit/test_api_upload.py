"""PUT /rounds/{round}/updates/{blob_hash}: the signed upload, its receipt, and every way it is refused."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

from fakes import account, make_world, model_bytes, model_tensors
from fedchain.auth import recover_receipt_signer
from fedchain.codec import UpdateIdentity, encode_json, encode_tensors, encode_update
from fedchain.hashing import commitment

MAX = 64 * 1024
AGGREGATOR_KEY = account(77)


def open_round_with(world, *, deadline=None, **config) -> int:
    """Open a round whose committed config is ``config`` (e.g. limits.max_update_bytes)."""
    config_hash = world.store.put(encode_json({"version": 2, "round_seq": len(world.chain._rounds), **config}))
    deadline = world.chain.now + 3600 if deadline is None else deadline
    return world.chain.open_round(world.model_hash, config_hash, deadline, 1)


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, open_round=False)
    w.app.state.signer = AGGREGATOR_KEY
    open_round_with(w, limits={"max_update_bytes": MAX})
    return w


def err(r, status: int, reason: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "reason", "detail", "hint"}
    assert body["reason"] == reason, body
    assert "Traceback" not in r.text
    return body


def update(world, node=None, round_id: int = 1, scale: float = 2.5, tensors=None) -> bytes:
    """An update blob naming ``node`` (default nodes[0]) as its sender for ``round_id``."""
    node = node or world.nodes[0]
    ident = UpdateIdentity(world.chain.chain_id, world.chain.rounds_address, round_id, node.address)
    return encode_update(tensors if tensors is not None else model_tensors(scale), ident)


def patch_last_float(data: bytes, value: float) -> bytes:
    out = bytearray(data)
    out[-4:] = np.array([value], dtype="<f4").tobytes()
    return bytes(out)


def raw_safetensors(header: dict, data: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + data


def finalize(world, rid: int) -> None:
    world.chain.submit_update(rid, world.nodes[1].address, "0x" + "cd" * 32, 10)
    new = world.store.put(model_bytes(5.0))
    world.chain.warp_past(rid)
    world.chain.finalize_round(rid, new, "0x" + "ef" * 32, 1)
    world.model_hash = new


def asgi_put(world, h: str, receive, *, headers=()) -> list[dict]:
    """Drive the app directly with a custom ``receive`` (stalls, disconnects); the sent messages."""
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    path = f"/rounds/1/updates/{h}"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"x-fedchain-signature", world.sign(world.nodes[0], 1, h).encode()),
                    *headers],
        "client": ("127.0.0.1", 1), "server": ("test", 80), "app": world.app,
    }
    asyncio.run(world.app(scope, receive, send))
    return sent


def status_of(sent: list[dict]) -> int:
    return next(m for m in sent if m["type"] == "http.response.start")["status"]


def body_of(sent: list[dict]) -> dict:
    return json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


# --- success ---------------------------------------------------------------------------------------
def test_upload_from_eligible_node_is_stored_indexed_and_receipted(world):
    data = update(world)
    h = commitment(data)
    r = world.put(1, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("round", "node", "blob_hash", "size")} == {
        "round": 1, "node": world.nodes[0].address, "blob_hash": h, "size": len(data)}
    assert body["receipt"]["round"] == 1 and body["receipt"]["node"] == world.nodes[0].address
    assert body["receipt"]["blob_hash"] == h and body["receipt"]["signer"] == AGGREGATOR_KEY.address
    assert world.store.get(h) == data
    assert world.indexer.uploads_for(1, world.nodes[0].address) == [h]


def test_receipt_recovers_to_the_aggregator_key(world):
    data = update(world)
    receipt = world.put(1, data).json()["receipt"]
    signer = recover_receipt_signer(receipt["signature"], world.chain.chain_id, world.chain.rounds_address, 1,
                                    world.nodes[0].address, commitment(data))
    assert signer == AGGREGATOR_KEY.address == receipt["signer"]
    # the receipt binds round, node and blob: it does not recover for another node
    other = recover_receipt_signer(receipt["signature"], world.chain.chain_id, world.chain.rounds_address, 1,
                                   world.nodes[1].address, commitment(data))
    assert other != AGGREGATOR_KEY.address


def test_without_a_signing_key_the_receipt_is_null(world):
    world.app.state.signer = None
    r = world.put(1, update(world))
    assert r.status_code == 201 and r.json()["receipt"] is None


def test_reupload_of_the_same_blob_is_idempotent_with_a_receipt(world):
    data = update(world)
    first = world.put(1, data)
    again = world.put(1, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()  # signatures are deterministic (RFC 6979)


def test_upload_accepts_uppercase_hash_and_unprefixed_signature(world):
    data = update(world)
    h = commitment(data)
    sig = world.sign(world.nodes[0], 1, h)
    r = world.put(1, data, blob_hash="0x" + h[2:].upper(), signature=sig[2:])
    assert r.status_code == 201, r.text
    assert r.json()["blob_hash"] == h


def test_nodes_upload_independently(world):
    for i, node in enumerate(world.nodes):
        assert world.put(1, update(world, node, scale=3.0 + i), node).status_code == 201


def test_upload_deadline_ignores_the_local_clock(world):
    """The fake chain's time is 2023, so the deadline is long past by the local clock: only chain
    time counts."""
    import time

    assert world.chain._rounds[1].deadline < time.time()
    assert world.put(1, update(world)).status_code == 201


# --- 401 ---------------------------------------------------------------------------------------------
def test_upload_rejects_unsigned_request(world):
    data = update(world)
    body = err(world.put(1, data, signed=False), 401, "missing_signature")
    assert "X-Fedchain-Signature" in body["hint"]
    assert not world.store.has(commitment(data))


@pytest.mark.parametrize("sig", ["0xnothex", "0x" + "11" * 64, "deadbeef"])
def test_upload_rejects_garbled_signature(world, sig):
    err(world.put(1, update(world), signature=sig), 401, "bad_signature")


def test_upload_rejects_well_formed_but_unrecoverable_signature(world):
    err(world.put(1, update(world), signature="0x" + "11" * 64 + "63"), 401, "bad_signature")


# --- 403 ---------------------------------------------------------------------------------------------
def test_upload_rejects_signature_by_non_node_as_not_eligible(world):
    stranger = account(99)
    data = update(world, stranger)
    body = err(world.put(1, data, stranger), 403, "not_eligible")
    assert stranger.address in body["detail"]
    assert not world.store.has(commitment(data))


def test_upload_rejects_removed_node(world):
    world.chain.remove_node(world.nodes[0].address)
    err(world.put(1, update(world)), 403, "not_eligible")


def test_node_admitted_while_the_round_is_open_is_not_eligible_until_the_next_round(world):
    late = account(50)
    world.chain.admit_node(late.address)
    err(world.put(1, update(world, late), late), 403, "not_eligible")
    finalize(world, 1)
    rid = open_round_with(world)
    assert world.put(rid, update(world, late, rid), late).status_code == 201


@pytest.mark.parametrize("where", ["round", "chain", "contract", "blob"])
def test_upload_rejects_signature_replayed_for_another_context(world, where):
    data = update(world)
    h = commitment(data)
    sig = {
        "round": lambda: world.sign(world.nodes[0], 2, h),
        "chain": lambda: world.sign(world.nodes[0], 1, h, chain_id=1),
        "contract": lambda: world.sign(world.nodes[0], 1, h, contract="0x" + "77" * 20),
        "blob": lambda: world.sign(world.nodes[0], 1, commitment(update(world, scale=9.0))),
    }[where]()
    err(world.put(1, data, signature=sig), 403, "not_eligible")


# --- 413: the limit comes from the committed round config -------------------------------------
def test_upload_over_the_configs_limit_is_413(world):
    big = update(world, tensors={"w": np.ones(MAX // 4 + 10, dtype=np.float32)})
    assert len(big) > MAX
    body = err(world.put(1, big), 413, "too_large")
    assert str(MAX) in body["detail"] and "max_update_bytes" in body["detail"]
    assert not world.store.has(commitment(big))


def test_size_limit_is_the_round_configs_not_a_local_setting(world):
    """The local FEDCHAIN_MAX_BLOB_BYTES has no say over uploads: a round whose config allows more
    accepts more."""
    world.settings.max_blob_bytes = 10
    assert world.put(1, update(world)).status_code == 201


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
    received = []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    sent = asgi_put(world, commitment(b"x"), receive, headers=[(b"content-length", str(10**10).encode())])
    assert status_of(sent) == 413 and body_of(sent)["reason"] == "too_large"
    assert received == []


def test_signature_is_checked_before_size(world):
    err(world.put(1, b"\0" * (MAX + 1), signed=False), 401, "missing_signature")


# --- 400 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0x1234", "z" * 64, "0x" + "g" * 64, "ab" * 32])
def test_upload_rejects_malformed_blob_hash(world, bad):
    err(world.put(1, update(world), blob_hash=bad, signature="0x" + "11" * 65), 400, "bad_hash")


def test_upload_rejects_body_that_does_not_hash_to_the_name(world):
    claimed = commitment(update(world, scale=7.0))
    data = update(world)
    body = err(world.put(1, data, blob_hash=claimed), 400, "hash_mismatch")
    assert body["error"] == "HashMismatch"
    assert not world.store.has(claimed) and not world.store.has(commitment(data))


def test_signer_is_checked_before_the_body_is_hashed(world):
    """A non-node is refused from the URL and header alone: it cannot make us read or hash a body."""
    claimed = commitment(update(world, scale=7.0))
    err(world.put(1, update(world), account(99), blob_hash=claimed), 403, "not_eligible")


# --- 404 / 409 ---------------------------------------------------------------------------------------
def test_upload_rejects_unknown_round(world):
    err(world.put(5, update(world, round_id=5)), 404, "unknown_round")


def test_upload_rejects_finalized_round(world):
    finalize(world, 1)
    err(world.put(1, update(world)), 409, "round_not_open")


def test_upload_rejects_expired_round(world):
    world.chain.warp_past(1, grace=True)
    world.chain.expire_round(1)
    err(world.put(1, update(world)), 409, "round_not_open")


def test_upload_after_the_deadline_by_chain_time_is_409_upload_closed(world):
    world.chain.warp_past(1)
    body = err(world.put(1, update(world)), 409, "upload_closed")
    assert "chain time" in body["detail"]
    assert not world.store.has(commitment(update(world)))


def test_upload_at_the_deadline_is_still_accepted(world):
    world.chain.now = world.chain._rounds[1].deadline
    assert world.put(1, update(world)).status_code == 201


def test_upload_rejects_a_second_different_blob_from_the_same_node(world):
    assert world.put(1, update(world)).status_code == 201
    other = update(world, scale=8.0)
    body = err(world.put(1, other), 409, "duplicate")
    assert commitment(update(world)) in body["detail"]
    assert not world.store.has(commitment(other))


def test_upload_rejects_blob_other_than_the_on_chain_commitment(world):
    committed = update(world, scale=6.0)
    world.chain.submit_update(1, world.nodes[0].address, commitment(committed), 10)
    err(world.put(1, update(world)), 409, "duplicate")
    assert world.put(1, committed).status_code == 201


# --- 408 and disconnects ----------------------------------------------------------------------------
def test_stalled_upload_body_is_408_upload_timeout(world):
    world.settings.upload_read_timeout = 0.2
    data = update(world)
    calls = []

    async def receive():
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": data[:100], "more_body": True}
        await asyncio.sleep(30)  # the client stops sending
        raise AssertionError("unreachable")

    sent = asgi_put(world, commitment(data), receive)
    assert status_of(sent) == 408 and body_of(sent)["reason"] == "upload_timeout"
    assert not world.store.has(commitment(data))


def test_slow_upload_body_is_408_upload_timeout(world):
    world.settings.upload_body_timeout = 0.3
    data = update(world)

    async def receive():
        await asyncio.sleep(0.1)  # a trickle: each chunk in time, the whole body not
        return {"type": "http.request", "body": b"\0", "more_body": True}

    sent = asgi_put(world, commitment(data), receive)
    assert status_of(sent) == 408 and body_of(sent)["reason"] == "upload_timeout"


def test_client_disconnect_mid_upload_is_one_log_line_and_stores_nothing(world, caplog):
    data = update(world)
    calls = []

    async def receive():
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": data[:100], "more_body": True}
        return {"type": "http.disconnect"}

    with caplog.at_level(logging.INFO):
        asgi_put(world, commitment(data), receive)
    lines = [r for r in caplog.records if "disconnect" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert not any(r.exc_info for r in caplog.records)
    assert not world.store.has(commitment(data))
    assert world.indexer.uploads_for(1, world.nodes[0].address) == []


# --- 422 ---------------------------------------------------------------------------------------------
def test_copied_blob_of_another_node_is_rejected_as_not_own_update(world):
    theirs = update(world, world.nodes[1])
    assert world.put(1, theirs, world.nodes[1]).status_code == 201
    body = err(world.put(1, theirs, world.nodes[0]), 422, "not_own_update")
    assert world.nodes[1].address in body["detail"]
    assert world.indexer.uploads_for(1, world.nodes[0].address) == []


def test_blob_made_for_another_round_is_not_own_update(world):
    err(world.put(1, update(world, round_id=2)), 422, "not_own_update")


def test_blob_without_a_sender_is_malformed(world):
    err(world.put(1, model_bytes(2.5)), 422, "malformed")


def test_upload_rejects_truncated_safetensors(world):
    body = err(world.put(1, update(world)[:-7]), 422, "malformed")
    assert body["error"] == "InvalidBlob"


def test_upload_rejects_garbage(world):
    err(world.put(1, b"this is not a tensor file at all"), 422, "malformed")


def test_upload_rejects_nan(world):
    data = patch_last_float(update(world), float("nan"))
    err(world.put(1, data), 422, "non_finite")
    assert not world.store.has(commitment(data))


def test_upload_rejects_wrong_tensor_names(world):
    t = model_tensors(2.0)
    t["layer.extra"] = t.pop("layer.bias")
    body = err(world.put(1, update(world, tensors=t)), 422, "wrong_names")
    assert "layer.bias" in body["detail"]


def test_upload_rejects_wrong_shape(world):
    t = model_tensors(2.0)
    t["layer.weight"] = t["layer.weight"].reshape(3, 2)
    err(world.put(1, update(world, tensors=t)), 422, "wrong_shape")


def test_upload_rejects_wrong_dtype(world):
    data = raw_safetensors({"layer.bias": {"data_offsets": [0, 24], "dtype": "F64", "shape": [3]}}, b"\0" * 24)
    err(world.put(1, data), 422, "wrong_dtype")


def test_validation_follows_the_rounds_base_model(world):
    assert world.put(1, update(world)).status_code == 201
    finalize(world, 1)
    rid = open_round_with(world)
    assert world.put(rid, update(world, round_id=rid, scale=4.0)).status_code == 201
    nan = patch_last_float(update(world, world.nodes[1], rid), float("inf"))
    err(world.put(rid, nan, world.nodes[1]), 422, "non_finite")


# --- 503 ---------------------------------------------------------------------------------------------
def test_missing_base_model_is_a_503_not_a_client_error(world):
    world.store.delete(world.model_hash)
    err(world.put(1, update(world)), 503, "base_model_missing")


def test_missing_round_config_is_a_503(world):
    world.store.delete(world.chain._rounds[1].config_hash)
    err(world.put(1, update(world)), 503, "config_missing")


def test_unusable_round_config_is_a_503(world):
    rid_hash = world.store.put(encode_json({"limits": {"max_update_bytes": "lots"}}))
    finalize(world, 1)
    rid = world.chain.open_round(world.model_hash, rid_hash, world.chain.now + 3600, 1)
    err(world.put(rid, update(world, round_id=rid)), 503, "bad_config")


def test_chain_down_during_upload_is_503(world):
    world.chain.down = True
    err(world.put(1, update(world)), 503, "rpc_unavailable")


def test_encode_tensors_blob_is_still_a_valid_model_for_the_spec(world):
    """Sanity: the base model itself (no metadata) is what specs are read from."""
    assert world.store.get(world.model_hash) == encode_tensors(model_tensors(1.0))
