"""Command-line arguments of the participant (kept free of heavy imports: `fedchain --help` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedchain.settings import Settings


def add_key_arguments(p: argparse.ArgumentParser, *, dev_default_note: str = "") -> None:
    """--keystore / --private-key (hidden; FEDCHAIN_PRIVATE_KEY) / --dev-account: one signing key."""
    s = Settings()
    g = p.add_argument_group("signing key (one of)")
    g.add_argument("--keystore", type=Path, default=s.keystore_file,
                   help="eth-account keystore JSON (FEDCHAIN_KEYSTORE_FILE); password from FEDCHAIN_KEYSTORE_PASSWORD")
    g.add_argument("--private-key", default=s.private_key, help=argparse.SUPPRESS)  # prefer keystores
    g.add_argument("--dev-account", type=int, default=s.dev_account,
                   help="index of an anvil dev account (local chains only; FEDCHAIN_DEV_ACCOUNT)" + dev_default_note)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from fedchain.cliutil import (
        HelpFormatter, api_help, non_negative_float, positive_float, positive_int, probability, resolve_api_url,
        resolve_rpc_url, rpc_help,
    )

    p = parser or argparse.ArgumentParser(prog="fedchain node", description="Run a fedchain participant node.",
                                          formatter_class=HelpFormatter)
    p.epilog = ("A node stops after --rounds rounds, or when no round has been open for --idle-exit seconds "
                "(the federation has ended), with a closing `done:` line.")
    # The defaults are resolved now, so --help shows the URLs this node would use.
    p.add_argument("--rpc-url", default=resolve_rpc_url(), help=rpc_help())
    p.add_argument("--api-url", default=resolve_api_url(), help=api_help())
    add_key_arguments(p)
    p.add_argument("--task", default="options-iv", help="built-in task name or module:attribute (must match the rounds')")
    p.add_argument("--shard", type=int, default=0, help="this node's shard of the task's generated data, 0..NUM_SHARDS-1")
    p.add_argument("--num-shards", type=positive_int, default=1, help="how many shards the generated data is split into")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated data (the same for every node)")
    p.add_argument("--data", type=Path, default=None, help="private data file (CSV/Parquet) instead of generated data")
    p.add_argument("--rounds", type=positive_int, default=None,
                   help="stop after taking part in this many rounds (default: until the federation ends, see --idle-exit)")
    p.add_argument("--idle-exit", type=non_negative_float, default=300.0, metavar="SECONDS",
                   help="stop when no round has been open for this long after one closed: the aggregator has "
                        "finished (0: wait for new rounds forever)")
    p.add_argument("--commit-mode", choices=("direct", "relay"), default="direct",
                   help="direct: submitUpdate from this node's address (pays gas); relay: post a signed "
                        "commitment for the aggregator's batch (no ETH needed), and commit directly if it "
                        "is not on-chain by the relay cut-off")
    p.add_argument("--retry-seconds", type=float, default=300.0,
                   help="how long to keep retrying an unreachable chain or API before giving up (each retry is printed)")
    p.add_argument("--receipts-dir", type=Path, default=None,
                   help="where upload receipts are kept (default: .fedchain/receipts/<address> in the current folder)")
    p.add_argument("--show-receipts", action="store_true",
                   help="print the upload receipts this node kept (and who signed each), then exit")
    p.add_argument("--attack", default=None, metavar="NAME",
                   help="run as a HOSTILE node for robustness experiments: sign_flip, scaling, noise, data_poison, "
                        "inflate, alie, ipm, min_max, min_sum (docs/robustness.md)")
    p.add_argument("--attack-param", action="append", default=[], metavar="KEY=VALUE",
                   help="an attack parameter (repeatable), e.g. k=10, or a harness key: n, f, estimate_k, "
                        "estimate_frac, collude_dir, collude_wait")
    p.add_argument("--show-public-key", action="store_true",
                   help="print this node's X25519 public key for secure rounds (derived from its signing key; "
                        "the admin registers it with `fedchain admit ADDRESS --public-key KEY`), then exit")
    p.add_argument("--no-events", action="store_true",
                   help="do not follow the API's pushed round events (GET /events); poll the chain every 0.5 s "
                        "instead (default: follow them, and poll every 5 s besides)")
    p.add_argument("--ready-file", type=Path, default=None, metavar="PATH",
                   help="write PATH (JSON: address, pid, time) once this node has connected, loaded its task and "
                        "data and waits for rounds; `fedchain demo` waits for every node's file before round 1 "
                        "(default: none)")
    p.add_argument("--crash-at", default=None, metavar="STAGE@ROUND",
                   help="fault injection for dropout tests: the process dies at STAGE of round ROUND, STAGE one of "
                        "after-training, after-upload, after-commit, after-unmask-upload (default: never)")
    g = p.add_argument_group("record-level DP-SGD on this node (docs/tasks.md; either --mode)")
    g.add_argument("--dp-sgd", action="store_true",
                   help="train with DP-SGD (Opacus): clip each record's gradient, add Gaussian noise, and report "
                        "this node's own record-level ε, cumulative over its rounds")
    g.add_argument("--dp-noise-multiplier", type=positive_float, default=1.0, metavar="SIGMA",
                   help="noise standard deviation as a multiple of --dp-max-grad-norm (larger: smaller ε, noisier)")
    g.add_argument("--dp-max-grad-norm", type=positive_float, default=0.003, metavar="C",
                   help="L2 bound each record's gradient is clipped to (sets the noise scale, not ε); the default "
                        "suits options-iv, whose per-record gradients are about 1e-3 (docs/tasks.md)")
    g.add_argument("--dp-delta", type=probability, default=1e-5, metavar="DELTA",
                   help="δ of the reported (ε, δ); keep it below 1 / this node's records")
    return p

