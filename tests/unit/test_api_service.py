"""/health, /nodes, /blobs, /deployment, error bodies, OpenAPI, and the background sync thread."""

from __future__ import annotations

import time

import pytest

from fakes import TestClient, make_world, model_bytes
from fedchain.errors import ChainError, ContractRevert
from fedchain.hashing import commitment


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# --- health --------------------------------------------------------------------------------------
def test_health_is_ok_with_chain_and_index_state(world):
    world.indexer.sync()
    h = world.client.get("/health").json()
    assert h == {
        "status": "ok",
        "chain_id": 31337,
        "block": world.chain.block_number(),
        "rounds_contract": world.chain.rounds_address,
        "registry_contract": world.chain.registry_address,
        "indexed_block": world.chain.block_number(),
        "detail": None,
    }


def test_health_is_degraded_when_the_rpc_is_down(world):
    world.indexer.sync()
    world.chain.down = True
    r = world.client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "degraded" and h["block"] is None
    assert "cannot reach the chain" in h["detail"]
    assert h["indexed_block"] is not None  # reads still served from the index


def test_health_is_degraded_while_index_sync_fails(world):
    world.chain.events = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("log query failed"))
    with pytest.raises(RuntimeError):
        world.indexer.sync()
    h = world.client.get("/health").json()
    assert h["status"] == "degraded" and "log query failed" in h["detail"]


# --- background sync -----------------------------------------------------------------------------
def test_background_sync_indexes_new_events_and_survives_a_dead_rpc(tmp_path):
    w = make_world(tmp_path, background_sync=True, poll_interval=0.02)
    with TestClient(w.app) as client:
        assert wait_for(lambda: client.get("/rounds").json()["total"] == 1)
        w.chain.down = True
        assert wait_for(lambda: client.get("/health").json()["status"] == "degraded")
        assert w.app.state.sync_thread.is_alive()
        w.chain.down = False
        w.chain.submit_update(1, w.nodes[0].address, "0x" + "cd" * 32, 5)
        assert wait_for(lambda: client.get("/health").json()["status"] == "ok")
        assert wait_for(lambda: len(client.get("/rounds/1").json()["updates"]) == 1)
        thread = w.app.state.sync_thread
    assert not thread.is_alive()  # stopped by the lifespan


# --- nodes -----------------------------------------------------------------------------------------
def test_nodes_lists_registry_state(world):
    world.chain.remove_node(world.nodes[2].address)
    world.chain.update_node(world.nodes[0].address, b"\x42" * 33, "0x" + "55" * 32)
    world.indexer.sync()
    nodes = world.client.get("/nodes").json()["items"]
    assert [n["address"] for n in nodes] == [n.address for n in world.nodes]
    by = {n["address"]: n for n in nodes}
    assert by[world.nodes[0].address]["public_key"] == "0x" + "42" * 33
    assert by[world.nodes[0].address]["metadata_hash"] == "0x" + "55" * 32
    assert by[world.nodes[1].address]["public_key"] == "0x" + "02" * 33
    assert by[world.nodes[2].address]["active"] is False
    for n in nodes:
        assert n["active"] == world.chain.is_active_node(n["address"])
    active = world.client.get("/nodes", params={"active": True}).json()["items"]
    assert [n["address"] for n in active] == [n.address for n in world.nodes[:2]]


# --- blobs -----------------------------------------------------------------------------------------
def test_blob_is_served_with_its_hash_as_etag(world):
    data = model_bytes(1.0)
    h = commitment(data)
    r = world.client.get(f"/blobs/{h}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["etag"] == f'"{h}"'
    assert world.client.get(f"/blobs/0x{h[2:].upper()}").content == data
    assert world.client.get(f"/blobs/{h}", headers={"If-None-Match": f'"{h}"'}).status_code == 304


def test_blob_head_gives_size_without_body(world):
    data = model_bytes(1.0)
    r = world.client.head(f"/blobs/{commitment(data)}")
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) == len(data)
    assert world.client.head("/blobs/0x" + "00" * 32).status_code == 404


def test_unknown_blob_is_404(world):
    r = world.client.get("/blobs/0x" + "00" * 32)
    assert r.status_code == 404 and r.json()["reason"] == "blob_not_found"


@pytest.mark.parametrize("bad", ["0x1234", "hello", "0x" + "zz" * 32, "ab" * 32])
def test_malformed_blob_hash_is_400(world, bad):
    r = world.client.get(f"/blobs/{bad}")
    assert r.status_code == 400 and r.json()["reason"] == "bad_hash"


def test_corrupted_stored_blob_is_never_served(world):
    data = model_bytes(1.0)
    h = commitment(data)
    world.store.path(h).write_bytes(data[:-1] + b"\x01")
    r = world.client.get(f"/blobs/{h}")
    assert r.status_code == 503 and r.json()["reason"] == "corrupted"


# --- deployment, errors, OpenAPI ----------------------------------------------------------------
def test_deployment_names_the_contracts(world):
    d = world.client.get("/deployment").json()
    assert d["chain_id"] == 31337 and d["block"] == world.chain.deploy_block
    assert d["contracts"]["TrainingRounds"]["address"] == world.chain.rounds_address
    assert d["contracts"]["NodeRegistry"]["address"] == world.chain.registry_address


def test_unexpected_exception_is_a_500_without_internals(world):
    class Broken:
        def get(self, h):
            raise RuntimeError("secret /etc/internal/path detail")

    world.app.state.store = Broken()
    r = world.client.get("/blobs/0x" + "00" * 32)
    assert r.status_code == 500
    assert r.json() == {
        "error": "InternalError",
        "reason": "internal",
        "detail": "internal server error",
        "hint": "this is a bug; the server log has details",
    }
    assert "secret" not in r.text and "Traceback" not in r.text


def test_fedchain_errors_keep_their_status_reason_and_hint(world):
    data = model_bytes(2.0)
    sig = world.sign(world.nodes[0], 1, commitment(data))

    def revert(_round, _address):
        raise ContractRevert("UnknownRound", {"roundId": 1}, function="isEligible")

    world.chain.is_eligible = revert
    r = world.put(1, data, signature=sig)
    assert r.status_code == 409
    assert r.json()["error"] == "ContractRevert" and r.json()["reason"] == "UnknownRound"

    def gone(_round, _address):
        raise ChainError("the node says no", hint="try another RPC")

    world.chain.is_eligible = gone
    r = world.put(1, data, signature=sig)
    assert r.status_code == 502
    assert r.json() == {"error": "ChainError", "reason": "chain_error", "detail": "the node says no",
                        "hint": "try another RPC"}


def test_unknown_route_uses_the_error_format(world):
    r = world.client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "HTTPException" and r.json()["reason"] == "not_found"


def test_openapi_and_docs_are_served(world):
    spec = world.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "fedchain aggregator API" and spec["info"]["version"]
    paths = spec["paths"]
    for p in ["/health", "/rounds", "/rounds/{round_id}", "/rounds/{round_id}/updates/{blob_hash}", "/nodes",
              "/blobs/{blob_hash}", "/deployment"]:
        assert p in paths
    put = paths["/rounds/{round_id}/updates/{blob_hash}"]["put"]
    assert put["tags"] == ["updates"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(put["responses"])
    assert any(p["name"] == "X-Fedchain-Signature" for p in put["parameters"])
    assert world.client.get("/docs").status_code == 200


def test_the_writes_are_the_upload_the_relayed_commitment_and_the_unmasking_upload(world):
    spec = world.client.get("/openapi.json").json()
    writes = [(p, m) for p, ops in spec["paths"].items() for m in ops if m not in ("get", "head")]
    assert sorted(writes) == [("/rounds/{round_id}/commitments", "post"), ("/rounds/{round_id}/unmask/{blob_hash}", "put"),
                              ("/rounds/{round_id}/updates/{blob_hash}", "put")]


def test_blob_hash_parameters_document_the_pattern_the_handler_enforces(world):
    spec = world.client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["name"] == "blob_hash":
                    assert p["schema"]["pattern"] == "^0x[0-9a-fA-F]{64}$", path
                    assert "400" in op["responses"], path
    r = world.client.get("/blobs/" + "ab" * 32)  # violates the pattern: the documented 400
    assert r.status_code == 400 and r.json()["reason"] == "bad_hash"


def test_every_422_is_documented_as_the_error_body_and_sent_as_one(world):
    spec = world.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for op in ops.values():
            if "422" in op["responses"]:
                schema = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, path
    put = spec["paths"]["/rounds/{round_id}/updates/{blob_hash}"]["put"]
    assert put["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    r = world.client.get("/rounds/not-a-number")
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error", "reason", "detail", "hint"} and body["reason"] == "invalid_request"
    assert "round_id" in body["detail"]


def test_health_is_degraded_when_the_round_loop_reports_a_problem(world):
    world.indexer.sync()
    world.app.state.loop_status = {"state": "degraded", "detail": "RPC timeout, retrying in 8 s"}
    h = world.client.get("/health").json()
    assert h["status"] == "degraded" and "round loop: RPC timeout, retrying in 8 s" in h["detail"]
    world.app.state.loop_status = {"state": "ok", "detail": None}
    assert world.client.get("/health").json()["status"] == "ok"


def test_health_never_500s_on_a_broken_chain_client(world):
    def broken():
        raise ZeroDivisionError("weird")

    world.chain.block_number = broken
    world.app.state.loop_status = "not even a dict"
    r = world.client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "degraded"


def test_client_disconnect_on_a_json_route_is_no_traceback_and_no_500(world, caplog):
    import asyncio
    import logging

    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/rounds/1/commitments", "raw_path": b"/rounds/1/commitments", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"t"), (b"content-type", b"application/json"),
                                          (b"content-length", b"100")],
             "client": ("127.0.0.1", 1), "server": ("t", 80), "app": world.app}
    with caplog.at_level(logging.INFO):
        asyncio.run(world.app(scope, receive, send))
    assert not any(r.exc_info for r in caplog.records)
    assert len([r for r in caplog.records if "disconnect" in r.getMessage()]) <= 1
    start = [m for m in sent if m["type"] == "http.response.start"]
    assert not start or start[0]["status"] < 500


def test_poked_sync_thread_syncs_at_once_instead_of_after_its_interval():
    from fedchain.api.app import SyncThread

    class Counting:
        calls = 0

        def sync(self):
            Counting.calls += 1

    t = SyncThread(Counting(), interval=30)
    t.start()
    try:
        assert wait_for(lambda: Counting.calls == 1)  # the first sync runs at start
        t.poke()
        assert wait_for(lambda: Counting.calls == 2, timeout=2)  # not 30 s later
    finally:
        t.stop()
    assert not t.is_alive()  # stop wakes it from its wait
