"""The round config (a committed JSON blob): every setting that affects a round's result.

``verify`` recomputes a round from the chain, this document and the blobs the report references,
so nothing result-affecting may come from a local setting: size limits, the sample cap, the
strategy and its parameters, the training recipe, the seeds and who may read update blobs all
live here. Version 2 layout::

    {"version": 2, "round": 3, "mode": "transparent",
     "task": "options-iv", "task_params": {...}, "training": {...},
     "strategy": {"name": "fedavg", "params": {}},
     "seed": 3000012, "eval_seed": 0, "min_updates": 2,
     "max_samples": 100000, "selection_rate": 0,
     "limits": {"max_update_bytes": 67108864},
     "relay": {"cutoff_seconds": 5},
     "blobs": {"updates": "members"}}

``blobs.updates`` is ``"members"`` (after the round closes, registered nodes and auditors may read
update blobs with a signed GET) or ``"public"``. Before the round closes nobody may.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fedchain.errors import InvalidBlob

CONFIG_VERSION = 2
MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: Largest sample count a node may declare unless the config says otherwise.
DEFAULT_MAX_SAMPLES = 1_000_000
UPDATE_ACCESS = ("members", "public")


@dataclass(frozen=True)
class RoundRules:
    """The parts of a round config that the API and ``verify`` enforce, parsed and checked."""

    max_update_bytes: int
    max_samples: int
    min_updates: int
    relay_cutoff: int
    selection_rate: int
    update_access: str
    strategy: Mapping[str, Any]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "RoundRules":
        """Parse ``config``; ``InvalidBlob(reason="bad_config")`` names the first bad field.
        Version-1 configs (no limits) get the version-1 defaults."""

        def fail(msg: str) -> InvalidBlob:
            return InvalidBlob(f"round config: {msg}", reason="bad_config")

        if not isinstance(config, Mapping):
            raise fail("not a JSON object")
        limits = config.get("limits") or {}
        relay = config.get("relay") or {}
        blobs = config.get("blobs") or {}
        if not all(isinstance(x, Mapping) for x in (limits, relay, blobs)):
            raise fail("limits, relay and blobs must be objects")

        def integer(value: Any, name: str, lo: int, hi: int) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise fail(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
            return value

        access = blobs.get("updates", "members")
        if access not in UPDATE_ACCESS:
            raise fail(f"blobs.updates must be one of {', '.join(UPDATE_ACCESS)}, got {access!r}")
        strategy = config.get("strategy") or {"name": "fedavg", "params": {}}
        if not isinstance(strategy, Mapping) or not isinstance(strategy.get("name"), str):
            raise fail("strategy must be an object with a name")
        return cls(
            max_update_bytes=integer(limits.get("max_update_bytes", DEFAULT_MAX_UPDATE_BYTES),
                                     "limits.max_update_bytes", 1, 2**40),
            max_samples=integer(config.get("max_samples", 2**64 - 1), "max_samples", 1, 2**64 - 1),
            min_updates=integer(config.get("min_updates", 1), "min_updates", 1, 2**32 - 1),
            relay_cutoff=integer(relay.get("cutoff_seconds", 0), "relay.cutoff_seconds", 0, 2**32 - 1),
            selection_rate=integer(config.get("selection_rate", 0), "selection_rate", 0, 2**64 - 1),
            update_access=access,
            strategy=strategy,
        )
