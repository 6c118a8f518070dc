"""Run a brownie command on its own anvil, never on a chain someone already runs on port 8545.

brownie's ``development`` network is anvil on port 8545, and when something already listens there
brownie *attaches* to it: ``brownie test`` would then run against a user's own chain. This wrapper
adds a development network ``fedchain-test-<port>`` to brownie's network config (anvil, 10
accounts, base fee 0, like ``development``) on a port that is free (``--port``, default any free
one), runs the command with ``--network fedchain-test-<port>`` (brownie launches that anvil and
stops it at the end), and removes the network again, also on failure or Ctrl-C. The config file is
rewritten atomically, so a brownie starting meanwhile never reads half a file.

    python tools/brownie_test_network.py [--port N] -- brownie test tests/contracts
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def config_path() -> Path:
    from brownie._config import _get_data_folder  # creates ~/.brownie/network-config.yaml if missing

    return _get_data_folder() / "network-config.yaml"


def _write(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".network-config.", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    os.replace(tmp, path)


def edit(network_id: str, port: int | None) -> None:
    """Add (port given) or remove (port None) the development network ``network_id``."""
    path = config_path()
    data = yaml.safe_load(path.read_text())
    dev = [n for n in data.get("development", []) if n.get("id") != network_id]
    if port is not None:
        dev.append({"name": f"fedchain tests (anvil on {port})", "id": network_id, "cmd": "anvil",
                    "host": "http://127.0.0.1",
                    "cmd_settings": {"port": port, "gas_limit": 12000000, "accounts": 10, "base_fee": 0}})
    data["development"] = dev
    _write(path, data)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", default="", help="anvil port for the run (default: a free one; BROWNIE_PORT in make)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the brownie command, after --")
    args = p.parse_args()
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the brownie command after --")
    port = int(args.port) if str(args.port).strip() else free_port()
    if in_use(port):
        print(f"error: port {port} is in use (another chain?); pass BROWNIE_PORT=<a free port>", file=sys.stderr)
        return 2
    network_id = f"fedchain-test-{port}"
    edit(network_id, port)
    print(f"brownie on its own anvil at 127.0.0.1:{port} (network {network_id}; BROWNIE_PORT=N picks the port)",
          flush=True)
    try:
        return subprocess.call([*command, "--network", network_id])
    except KeyboardInterrupt:
        return 130
    finally:
        edit(network_id, None)


if __name__ == "__main__":
    raise SystemExit(main())
