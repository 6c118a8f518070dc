"""Throwaway servers for the scale tests: a PostgreSQL cluster and an S3-compatible server.

- **PostgreSQL**: ``initdb`` + ``pg_ctl`` of the installed PostgreSQL (``initdb`` on PATH, else the
  newest ``/usr/lib/postgresql/*/bin``), in a temporary folder, on a free port of 127.0.0.1, trust
  authentication, superuser ``fedchain``; fsync off (a test cluster). PostgreSQL refuses to run as
  root, so as root the cluster runs as the ``postgres`` user (``runuser``), which Debian's package
  creates. Stopped (``pg_ctl stop -m fast``) and deleted afterwards.
- **S3**: ``moto_server`` (moto 5.2.5, installed apart from .venv in ``.venv/moto`` by
  ``make test-scale``; see requirements-s3server.txt), a separate process on a free port.

``FEDCHAIN_TEST_PG_URL`` (a PostgreSQL server URL whose user may CREATE DATABASE) and
``FEDCHAIN_TEST_S3_ENDPOINT`` (any S3-compatible server; credentials from the AWS_* variables)
use servers of your own instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MOTO_DIR = REPO / ".venv" / "moto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


# --- PostgreSQL ------------------------------------------------------------------------------------
def pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


@dataclass
class Postgres:
    """A running server: ``url(db)`` is a SQLAlchemy URL for database ``db`` on it."""

    host: str
    port: int
    user: str
    _stop: list = field(default_factory=list)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{db}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        for fn in reversed(self._stop):
            fn()
        self._stop.clear()


def start_postgres() -> Postgres:
    """A throwaway cluster (see the module docstring). Raises RuntimeError with the reason."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl): `make test-scale` installs it with "
                           "apt-get as root, or `apt-get install postgresql`")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="fedchain-pg-"))
    if as_root:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError("running as root and there is no `postgres` user to run PostgreSQL as "
                               "(Debian's postgresql package creates it)") from None
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, sock, logf = tmp / "data", tmp / "sock", tmp / "server.log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "fedchain", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, env=env, cwd=tmp, timeout=120)
        subprocess.run([*prefix, "mkdir", "-p", str(sock)], check=True, cwd=tmp)
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off "
                f"-c full_page_writes=off -c max_connections=200")
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logf), "-o", opts, "-w",
                        "-t", "60", "start"], check=True, capture_output=True, env=env, cwd=tmp, timeout=90)
    except subprocess.CalledProcessError as exc:
        log = logf.read_text(errors="replace")[-2000:] if logf.exists() else ""
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"starting PostgreSQL failed: {exc.cmd}: {exc.stderr!r} {log}") from None
    pg = Postgres("127.0.0.1", port, "fedchain")

    def stop() -> None:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, env=env, cwd=tmp, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    pg._stop.append(stop)
    _wait_port(port, 30)
    return pg


def external_postgres(url: str) -> Postgres:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    user = u.username or "postgres"
    if u.password:
        user = f"{user}:{u.password}"
    pg = Postgres(u.host or "127.0.0.1", int(u.port or 5432), user)
    return pg


# --- S3 --------------------------------------------------------------------------------------------
S3_ENV = {"AWS_ACCESS_KEY_ID": "fedchain-test", "AWS_SECRET_ACCESS_KEY": "fedchain-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str
    env: dict
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def client(self):  # noqa: ANN201
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name=self.env["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}))

    def create_bucket(self, prefix: str = "fedchain") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def start_moto(log_dir: Path) -> S3Server:
    if not (MOTO_DIR / "moto").is_dir():
        raise RuntimeError(f"moto is not installed in {MOTO_DIR}: run `make test-scale` (it installs "
                           f"requirements-s3server.txt there)")
    port = free_port()
    log = log_dir / "moto_server.log"
    env = {**os.environ, "PYTHONPATH": str(MOTO_DIR), **S3_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=log_dir, start_new_session=True)
    try:
        _wait_port(port, 60, proc)
    except BaseException:
        proc.kill()
        raise
    return S3Server(f"http://127.0.0.1:{port}", dict(S3_ENV), proc, log)


def external_s3(endpoint: str) -> S3Server:
    env = {k: os.environ.get(k, v) for k, v in S3_ENV.items()}
    return S3Server(endpoint, env)
