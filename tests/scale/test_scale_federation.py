"""End to end on real processes, with the index on PostgreSQL and the blobs on S3: a real anvil,
the real aggregator (``python -m fedchain.cli aggregator``), a second aggregator process serving
the API only (a replica on the same database and bucket), and three real node processes (``python
-m node``). Two rounds are finalized, ``fedchain verify --round 2`` passes against either API,
and every blob the rounds name is in the bucket. And an aggregator pointed at a database it cannot
use exits at once with the fix, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import create_engine, text

from fedchain.devchain import free_port
from fedchain.settings import REPO_ROOT
from harness import _api_up, _finalized_or_expired, _indexed_rounds, _spawn, aggregator_cmd, deploy_dev_chain, stop_all, wait_for

NODES = 3
ROUNDS = 2


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("scale-federation")
    chain = deploy_dev_chain(workdir, range(1, NODES + 1))
    try:
        yield workdir, chain
    finally:
        stop_all([chain.anvil])


def _env(dev_chain, s3_server, db_url: str, blob_url: str | None) -> dict:
    env = dict(dev_chain.env)
    env.update(s3_server.env)
    env["FEDCHAIN_DB_URL"] = db_url
    if blob_url:
        env["FEDCHAIN_BLOB_URL"] = blob_url
        env["FEDCHAIN_S3_ENDPOINT"] = s3_server.endpoint
    return env


def _text(p: subprocess.CompletedProcess) -> str:
    return " ".join((p.stdout + p.stderr).split())  # the console wraps long lines


@pytest.mark.parametrize("damage", ["unknown_revision", "foreign_tables"])
def test_an_aggregator_on_a_database_it_cannot_use_exits_with_the_fix(dev, postgres, s3_server, damage):
    workdir, chain = dev
    db_url = postgres.create_database("bad")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        if damage == "unknown_revision":
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('deadbeef0042')"))
        else:
            conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    env = _env(chain, s3_server, db_url, None)
    cmd = aggregator_cmd(chain.rpc_url, free_port(), workdir / f"agg-{damage}", chain.deployments_dir,
                         "--rounds", "1", "--exit-when-done")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    said = _text(out)
    assert out.returncode != 0, said
    assert "Traceback" not in said and "internal error" not in said
    assert "error: the index database postgresql+psycopg://" in said
    if damage == "unknown_revision":
        assert "schema revision deadbeef0042, which this fedchain does not know" in said
        assert "hint: run the fedchain version that wrote it, or point FEDCHAIN_DB_URL at another database" in said
    else:
        assert "no alembic_version table" in said and "customers" in said
        assert "hint: point FEDCHAIN_DB_URL at an empty database" in said
    assert chain.chain.current_round_id() == 0  # refused before opening anything


def test_two_rounds_on_postgresql_and_s3_with_a_replica_then_verify(dev, postgres, s3_server):
    workdir, chain = dev
    db_url = postgres.create_database("fed")
    bucket = s3_server.create_bucket()
    env = _env(chain, s3_server, db_url, f"s3://{bucket}/fed")
    api_port, replica_port = free_port(), free_port()
    api_url, replica_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{replica_port}"
    env["FEDCHAIN_API_URL"] = api_url
    # The replica gets its own copy of the deployment file (it records its URL there).
    replica_deployments = workdir / "replica-deployments"
    shutil.copytree(chain.deployments_dir, replica_deployments)
    procs: list[subprocess.Popen] = []
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)

    def log(name: str) -> str:
        p = logs / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def tails() -> str:
        return "".join(f"\n--- {n} ---\n{log(n)[-3000:]}" for n in
                       ("aggregator", "replica", *(f"node-{i}" for i in range(1, NODES + 1))))

    try:
        agg = _spawn(aggregator_cmd(chain.rpc_url, api_port, workdir / "agg", chain.deployments_dir,
                                    "--rounds", str(ROUNDS), "--min-updates", "2", "--round-seconds", "90"),
                     logs / "aggregator.log", env)
        procs.append(agg)
        wait_for(lambda: _api_up(api_url) or agg.poll() is not None, 120, "the aggregator API")
        assert agg.poll() is None, tails()
        replica = _spawn(aggregator_cmd(chain.rpc_url, replica_port, workdir / "replica", replica_deployments,
                                        "--rounds", "0"), logs / "replica.log", {**env, "FEDCHAIN_API_URL": replica_url})
        procs.append(replica)
        wait_for(lambda: _api_up(replica_url) or replica.poll() is not None, 120, "the replica API")
        assert replica.poll() is None, tails()
        for i in range(1, NODES + 1):
            procs.append(_spawn([sys.executable, "-m", "node", "--rpc-url", chain.rpc_url, "--api-url", api_url,
                                 "--dev-account", str(i), "--shard", str(i - 1), "--num-shards", str(NODES),
                                 "--rounds", str(ROUNDS), "--receipts-dir", str(workdir / "receipts" / f"node-{i}")],
                                logs / f"node-{i}.log", env))
        try:
            wait_for(lambda: _finalized_or_expired(chain.chain) >= ROUNDS, 240, f"{ROUNDS} rounds to close")
            for url in (api_url, replica_url):
                wait_for(lambda: _indexed_rounds(url) >= ROUNDS, 60, f"the index behind {url} to catch up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{tails()}") from None

        from fedchain.chain.types import RoundStatus

        for rid in range(1, ROUNDS + 1):
            assert chain.chain.get_round(rid).status == RoundStatus.FINALIZED, tails()
        # Both APIs serve the same history from the one database.
        main_rounds = httpx.get(f"{api_url}/rounds", timeout=10).json()["items"]
        replica_rounds = httpx.get(f"{replica_url}/rounds", timeout=10).json()["items"]
        assert [r["status"] for r in main_rounds] == ["finalized"] * ROUNDS
        assert replica_rounds == main_rounds
        for url in (api_url, replica_url):
            health = httpx.get(f"{url}/health", timeout=10).json()
            assert health["status"] == "ok", health

        for url in (api_url, replica_url):  # an auditor may use either API: the blobs come from S3
            out = subprocess.run([sys.executable, "-m", "fedchain.cli", "verify", "--round", str(ROUNDS),
                                  "--dev-account", "1", "--api-url", url, "--rpc-url", chain.rpc_url],
                                 capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=180)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "verified" in out.stdout

        # Every blob the rounds name is in the bucket, under the prefix; none went to a folder.
        client = s3_server.client()
        keys = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys |= {o["Key"] for o in page.get("Contents", [])}

        def key(h: str) -> str:
            return f"fed/{h[2:4]}/{h[4:6]}/{h[2:]}"

        for rid in range(1, ROUNDS + 1):
            info = chain.chain.get_round(rid)
            named = [info.base_model_hash, info.config_hash, info.global_model_hash, info.report_hash]
            named += [c.update_hash for c in chain.chain.commitments(rid)]
            assert len(named) == 4 + NODES
            missing = [h for h in named if key(h) not in keys]
            assert missing == [], f"round {rid}: not in s3://{bucket}/fed: {missing}"
        assert not any((workdir / d / "blobs").exists() and any((workdir / d / "blobs").rglob("*"))
                       for d in ("agg", "replica"))

        engine = create_engine(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM rounds WHERE status = 'finalized'")).scalar() == ROUNDS
            assert conn.execute(text("SELECT count(*) FROM updates")).scalar() == ROUNDS * NODES
            assert conn.execute(text("SELECT count(*) FROM uploads")).scalar() == ROUNDS * NODES
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        engine.dispose()
        for name in ("aggregator", "replica"):
            assert "Traceback" not in log(name), log(name)[-3000:]
    finally:
        stop_all(procs)
