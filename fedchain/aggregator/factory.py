"""Build an :class:`Aggregator` from command-line options (used by ``fedchain aggregator`` and the demo)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from fedchain.aggregator.config import parse_schedule
from fedchain.cliutil import secure_settings
from fedchain.aggregator.service import Aggregator
from fedchain.settings import Settings
from fedchain.tasks import load_task


def build_aggregator(args: argparse.Namespace, s: Settings, chain: Any, store: Any, api: Any,
                     log: Callable[[str], None]) -> tuple[Aggregator, Any]:
    task = load_task(args.task)
    agg = Aggregator(
        chain, store, task, task_spec=args.task, strategy=getattr(args, "strategy", "fedavg"),
        strategy_params=dict(getattr(args, "strategy_params", None) or {}), seed=args.seed,
        model_seed=getattr(args, "model_seed", 0), max_blob_bytes=s.max_blob_bytes,
        # Secure mode scales each update by min(n, cap) / cap before quantising: a cap near the
        # shard sizes keeps the fixed-point resolution (docs/privacy.md).
        max_samples=getattr(args, "max_samples", None) or (10_000 if getattr(args, "mode", "") == "secure"
                                                           else 1_000_000),
        relay_cutoff=int(getattr(args, "relay_cutoff", 5)), close_window=int(getattr(args, "close_window", 0) or 0),
        update_access="public" if getattr(args, "public_updates", False) else "members",
        lr_schedule=parse_schedule(getattr(args, "lr_schedule", None)),
        secure=secure_settings(args), unmask_window=int(getattr(args, "unmask_window", 15) or 15),
        unmask_linger=float(getattr(args, "unmask_linger", 0.1)),
        privacy_budget=getattr(args, "privacy_budget", None),
        privacy_delta=float(getattr(args, "privacy_delta", 1e-5) or 1e-5),
        relay=getattr(api, "relay", None), censor=getattr(args, "censor", None) or (),
        poll_interval=s.poll_interval, uploads_lookup=api.indexer.uploads_for, on_sync=getattr(api, "request_sync", api.indexer.sync),
        on_status=getattr(api, "set_loop_status", None), on_event=getattr(api, "publish", None), log=log,
    )
    return agg, task
