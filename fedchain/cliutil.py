"""Small helpers shared by the ``fedchain`` command and ``fedchain node`` (standard library only, so
``fedchain --help`` stays fast): the help formatter, argument types, and where the RPC and API URLs
come from when no flag names them.

URL precedence, for every command: the flag (``--rpc-url`` / ``--api-url``), then the environment
(``FEDCHAIN_RPC_URL`` / ``FEDCHAIN_API_URL``), then what the deployment file records
(``deployments/<chainId>.json``: ``rpc_url`` is written by ``fedchain deploy``, ``api_url`` by the
aggregator when it starts; with several files the newest is used), then the built-in defaults
``http://127.0.0.1:8545`` and ``http://127.0.0.1:8000``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_API_URL = "http://127.0.0.1:8000"
URL_SOURCES = "flag, else FEDCHAIN_{var}, else the {key} recorded in deployments/<chainId>.json, else {default}"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after each option's help, except where there is nothing to show
    (no default, a flag that is off, an empty list) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


def _at_least(text: str, parse: Any, what: str, low: float) -> Any:
    """``parse(text)``, refused by argparse at once unless it parses and is at least ``low``."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (refused at once, before anything starts)."""
    return _at_least(text, int, "a whole number", 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _at_least(text, int, "a whole number", 0)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    return _at_least(text, float, "a number", 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _at_least(text, float, "a number", 0)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def deployments_dir_default() -> Path:
    from fedchain.settings import REPO_ROOT

    env = os.environ.get("FEDCHAIN_DEPLOYMENTS_DIR")
    return Path(env) if env else REPO_ROOT / "deployments"


def recorded_deployment(deployments_dir: Path | str | None = None) -> dict[str, Any]:
    """The newest ``<chainId>.json`` in the folder as a dict ({} when there is none or it is unreadable)."""
    folder = Path(deployments_dir) if deployments_dir is not None else deployments_dir_default()
    try:
        files = [p for p in folder.glob("*.json") if p.stem.isdigit()]
    except OSError:
        return {}
    for path in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _resolve(flag: str | None, env: str, key: str, default: str, deployments_dir: Path | str | None) -> str:
    if flag:
        return flag
    if os.environ.get(env):
        return os.environ[env]
    value = recorded_deployment(deployments_dir).get(key)
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    return default


def resolve_rpc_url(flag: str | None = None, deployments_dir: Path | str | None = None) -> str:
    return _resolve(flag, "FEDCHAIN_RPC_URL", "rpc_url", DEFAULT_RPC_URL, deployments_dir)


def resolve_api_url(flag: str | None = None, deployments_dir: Path | str | None = None) -> str:
    return _resolve(flag, "FEDCHAIN_API_URL", "api_url", DEFAULT_API_URL, deployments_dir)


def rpc_help(what: str = "chain JSON-RPC URL") -> str:
    return f"{what}: " + URL_SOURCES.format(var="RPC_URL", key="rpc_url", default=DEFAULT_RPC_URL)


def api_help(what: str = "aggregator API URL") -> str:
    return f"{what}: " + URL_SOURCES.format(var="API_URL", key="api_url", default=DEFAULT_API_URL)


def record_api_url(deployments_dir: Path | str, chain_id: int, contract: str, api_url: str) -> bool:
    """Write ``api_url`` into ``<deployments_dir>/<chainId>.json`` when that file is for ``contract``,
    so nodes, ``fedchain rounds`` and ``fedchain verify`` on this machine find the API without a flag.
    Returns whether it wrote (never raises: the file is a convenience here)."""
    path = Path(deployments_dir) / f"{int(chain_id)}.json"
    try:
        data = json.loads(path.read_text())
        address = ((data.get("contracts") or {}).get("TrainingRounds") or {}).get("address", "")
        if str(address).lower() != str(contract).lower():
            return False
        if data.get("api_url") == api_url:
            return True
        data["api_url"] = api_url
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{chain_id}.", suffix=".json.tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
        return True
    except (OSError, ValueError, AttributeError):
        return False


def parse_key_values(pairs: Any, *, option: str) -> dict[str, Any]:
    """``["beta=0.2", "start=zero"]`` -> ``{"beta": 0.2, "start": "zero"}`` for a repeatable
    ``--OPTION KEY=VALUE``: each VALUE is parsed as JSON (numbers, true/false, null, lists,
    objects) and taken as a plain string otherwise. ConfigError names the option for a bad pair."""
    from fedchain.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = str(pair).partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ConfigError(f"bad {option} {pair!r}: expected KEY=VALUE", hint=f"e.g. {option} k=10")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def add_close_window_argument(p: argparse.ArgumentParser) -> None:
    """--close-window, shared by `aggregator` and `demo` (docs/protocol.md, "Closing early")."""
    p.add_argument("--close-window", type=non_negative_int, default=0, metavar="SECONDS",
                   help="once the quorum (--min-updates) has committed, the contract brings the deadline forward: "
                        "commitments close at most this many seconds of block time later (the quorum's own "
                        "second the first), so a round does not wait its whole deadline for "
                        "nodes that dropped out; must exceed the relay cut-off (default: 0, off: every round "
                        "waits for all nodes or the deadline)")


def add_secure_arguments(p: argparse.ArgumentParser, *, noise_default: float = 0.0) -> None:
    """--mode and the secure-mode options (docs/privacy.md), shared by `aggregator` and `demo`
    (the demo adds a little noise by default, so that it has an ε to print)."""
    g = p.add_argument_group("secure mode (--mode secure: secure aggregation and distributed DP, docs/privacy.md)")
    g.add_argument("--mode", choices=("transparent", "secure"), default="transparent",
                   help="transparent: plaintext updates, any strategy; secure: masked updates, only their sum is "
                        "revealed (fedavg only)")
    g.add_argument("--clip", type=float, default=5.0,
                   help="L2 bound C each node clips its update to (model units)")
    g.add_argument("--scale-bits", type=int, default=20, help="fixed-point scale 2^k of the integer codec")
    g.add_argument("--modulus-bits", type=int, choices=(32, 64), default=32, help="integers modulo 2^M")
    g.add_argument("--threshold", type=int, default=None,
                   help="t of the t-of-n unmasking (default: a majority of the admitted nodes, n // 2 + 1)")
    g.add_argument("--noise-multiplier", type=float, default=noise_default,
                   help="Skellam DP noise in the sum, standard deviation z x the L2 sensitivity (0: no DP noise)")
    g.add_argument("--colluders", type=int, default=0,
                   help="nodes assumed to collude with the aggregator: their noise is not counted in ε")
    g.add_argument("--privacy-budget", type=float, default=None, metavar="EPSILON",
                   help="refuse to open a round that could take total ε past this (default: no budget)")
    g.add_argument("--privacy-delta", type=float, default=1e-5, help="δ of the reported (ε, δ)")
    g.add_argument("--unmask-window", type=int, default=15,
                   help="seconds of chain time after the deadline for the survivors' unmasking posts")
    g.add_argument("--unmask-linger", type=non_negative_float, default=0.1,
                   help="once t unmasking posts are on-chain (enough to unmask), seconds to wait for the other "
                        "survivors' before merging")


def secure_settings(args: argparse.Namespace) -> Any:
    """The SecureSettings the --mode secure options ask for, or None in transparent mode."""
    if getattr(args, "mode", "transparent") != "secure":
        return None
    from fedchain.aggregator.config import SecureSettings

    return SecureSettings(clip=args.clip, scale_bits=args.scale_bits, modulus_bits=args.modulus_bits,
                          threshold=args.threshold, noise_multiplier=args.noise_multiplier or None,
                          colluders=args.colluders)
