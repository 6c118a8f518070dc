"""GET/HEAD /blobs: update blobs are sealed while their round is open, then readable by members
(signed BlobRead) or by anyone if the round config says so; models, configs and reports are public."""

from __future__ import annotations

import time

import pytest

from fakes import account, make_world, model_bytes, model_tensors
from fedchain.auth import READ_HEADER, sign_blob_read
from fedchain.codec import UpdateIdentity, encode_json, encode_update
from fedchain.hashing import commitment

EXPIRES = "X-Fedchain-Read-Expires"


def open_round_with(world, **config) -> int:
    config_hash = world.store.put(encode_json({"version": 2, "round_seq": len(world.chain._rounds), **config}))
    return world.chain.open_round(world.model_hash, config_hash, world.chain.now + 3600, 1)


def uploaded(world, node=None, rid: int = 1, scale: float = 2.5) -> str:
    node = node or world.nodes[0]
    data = encode_update(model_tensors(scale),
                         UpdateIdentity(world.chain.chain_id, world.chain.rounds_address, rid, node.address))
    r = world.put(rid, data, node)
    assert r.status_code == 201, r.text
    return commitment(data)


def close(world, rid: int, h: str, node=None) -> None:
    node = node or world.nodes[0]
    world.chain.submit_update(rid, node.address, h, 10)
    new = world.store.put(model_bytes(5.0 + rid))
    world.chain.warp_past(rid)
    world.chain.finalize_round(rid, new, "0x" + "ef" * 32, 1)
    world.model_hash = new


def read_headers(world, signer, h: str, expires: int | None = None) -> dict[str, str]:
    expires = int(time.time()) + 300 if expires is None else expires
    return {READ_HEADER: sign_blob_read(signer, world.chain.chain_id, world.chain.rounds_address, h, expires),
            EXPIRES: str(expires)}


def reason(r) -> str:
    assert "Traceback" not in r.text
    return r.json()["reason"]


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, open_round=False)
    open_round_with(w)
    return w


# --- sealed while open -----------------------------------------------------------------------------
def test_update_blob_is_sealed_while_its_round_is_open(world):
    h = uploaded(world)
    for who in (None, world.nodes[0], world.nodes[1]):
        headers = read_headers(world, who, h) if who else {}
        r = world.client.get(f"/blobs/{h}", headers=headers)
        assert r.status_code == 403 and reason(r) == "sealed", r.text
        assert world.client.head(f"/blobs/{h}", headers=headers).status_code == 403
    assert "immutable" not in world.client.get(f"/blobs/{h}").headers.get("cache-control", "")


def test_public_config_does_not_unseal_an_open_round(world):
    world.chain.warp_past(1, grace=True)
    world.chain.expire_round(1)
    rid = open_round_with(world, blobs={"updates": "public"})
    h = uploaded(world, rid=rid)
    assert reason(world.client.get(f"/blobs/{h}")) == "sealed"


# --- after the round closes --------------------------------------------------------------------------
def test_closed_rounds_update_needs_a_signed_read(world):
    h = uploaded(world)
    close(world, 1, h)
    r = world.client.get(f"/blobs/{h}")
    assert r.status_code == 401 and reason(r) == "read_unsigned"
    assert READ_HEADER in r.json()["hint"]


def test_member_reads_a_closed_rounds_update_privately(world):
    data_hash = uploaded(world)
    close(world, 1, data_hash)
    r = world.client.get(f"/blobs/{data_hash}", headers=read_headers(world, world.nodes[1], data_hash))
    assert r.status_code == 200 and commitment(r.content) == data_hash
    assert r.headers["cache-control"] == "private, no-store"
    head = world.client.head(f"/blobs/{data_hash}", headers=read_headers(world, world.nodes[2], data_hash))
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(r.content)


def test_auditor_role_holder_may_read(world):
    h = uploaded(world)
    close(world, 1, h)
    auditor = account(60)
    assert reason(world.client.get(f"/blobs/{h}", headers=read_headers(world, auditor, h))) == "not_a_member"
    world.chain.grant_role("AUDITOR_ROLE", auditor.address)
    assert world.client.get(f"/blobs/{h}", headers=read_headers(world, auditor, h)).status_code == 200


def test_outsider_and_removed_node_are_403_not_a_member(world):
    h = uploaded(world)
    close(world, 1, h)
    r = world.client.get(f"/blobs/{h}", headers=read_headers(world, account(61), h))
    assert r.status_code == 403 and reason(r) == "not_a_member"
    world.chain.remove_node(world.nodes[2].address)
    assert reason(world.client.get(f"/blobs/{h}", headers=read_headers(world, world.nodes[2], h))) == "not_a_member"


def test_read_permission_for_another_blob_recovers_to_a_stranger(world):
    h = uploaded(world)
    close(world, 1, h)
    headers = read_headers(world, world.nodes[1], "0x" + "12" * 32)
    assert reason(world.client.get(f"/blobs/{h}", headers=headers)) == "not_a_member"


@pytest.mark.parametrize("case,expected", [
    ("expired", "read_expired"),
    ("far", "read_expiry_too_far"),
    ("garbage_expiry", "bad_read_signature"),
    ("garbage_signature", "bad_read_signature"),
    ("no_expiry", "read_unsigned"),
])
def test_bad_read_permissions_are_401(world, case, expected):
    h = uploaded(world)
    close(world, 1, h)
    now = int(time.time())
    headers = {
        "expired": lambda: read_headers(world, world.nodes[1], h, now - 10),
        "far": lambda: read_headers(world, world.nodes[1], h, now + 7200),
        "garbage_expiry": lambda: {**read_headers(world, world.nodes[1], h), EXPIRES: "soon"},
        "garbage_signature": lambda: {**read_headers(world, world.nodes[1], h), READ_HEADER: "0x1234"},
        "no_expiry": lambda: {READ_HEADER: read_headers(world, world.nodes[1], h)[READ_HEADER]},
    }[case]()
    r = world.client.get(f"/blobs/{h}", headers=headers)
    assert r.status_code == 401 and reason(r) == expected, r.text


def test_round_config_can_make_closed_round_updates_public(world):
    world.chain.warp_past(1, grace=True)
    world.chain.expire_round(1)
    rid = open_round_with(world, blobs={"updates": "public"})
    h = uploaded(world, rid=rid)
    close(world, rid, h)
    r = world.client.get(f"/blobs/{h}")
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]


def test_expired_rounds_updates_open_to_members(world):
    h = uploaded(world)
    world.chain.warp_past(1, grace=True)
    world.chain.expire_round(1)
    assert reason(world.client.get(f"/blobs/{h}")) == "read_unsigned"
    assert world.client.get(f"/blobs/{h}", headers=read_headers(world, world.nodes[0], h)).status_code == 200


def test_sealing_falls_back_to_the_index_when_the_chain_is_down(world):
    h = uploaded(world)
    world.indexer.sync()
    world.chain.down = True
    assert reason(world.client.get(f"/blobs/{h}")) == "sealed"


# --- public blobs ------------------------------------------------------------------------------------
def test_models_configs_and_reports_stay_public(world):
    h = uploaded(world)
    close(world, 1, h)
    info = world.chain._rounds[1]
    report = world.store.put(encode_json({"version": 2, "round": 1}))
    for public in (info.base_model_hash, info.config_hash, info.global_model_hash, report):
        r = world.client.get(f"/blobs/{public}")
        assert r.status_code == 200, public
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_committing_a_models_hash_does_not_seal_the_model(world):
    """A hostile node commits the base model's hash as its update: the model stays public, since
    sealing follows the blob's own bytes (an update names its round), not on-chain claims."""
    world.chain.submit_update(1, world.nodes[2].address, world.model_hash, 10)
    world.indexer.sync()
    assert world.client.get(f"/blobs/{world.model_hash}").status_code == 200


def test_get_does_not_rehash_a_verified_blob(world, monkeypatch):
    import fedchain.store.filesystem as fs

    calls = []
    real = fs.commitment
    monkeypatch.setattr(fs, "commitment", lambda data: calls.append(1) or real(data))
    h = world.store.put(model_bytes(3.0))  # verified on the way in (put hashes it)
    before = len(calls)
    for _ in range(5):
        assert world.client.get(f"/blobs/{h}").status_code == 200
    assert len(calls) == before


def test_a_blob_changed_on_disk_is_verified_again_and_refused(world):
    data = model_bytes(3.0)
    h = world.store.put(data)
    assert world.client.get(f"/blobs/{h}").status_code == 200
    world.store.path(h).write_bytes(data[:-1] + b"\x07")
    r = world.client.get(f"/blobs/{h}")
    assert r.status_code == 503 and reason(r) == "corrupted"


def test_large_blob_is_streamed_in_chunks(world):
    import numpy as np

    from fedchain.codec import encode_tensors

    data = encode_tensors({"w": np.arange(3 * (1 << 18), dtype=np.float32)})  # 3 MiB
    h = world.store.put(data)
    with world.client.stream("GET", f"/blobs/{h}") as r:
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
        chunks = list(r.iter_raw())
    assert b"".join(chunks) == data
