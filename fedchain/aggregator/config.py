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

``"close_window"`` (seconds, present only when not 0, also on-chain): once ``min_updates`` nodes
have committed, the contract brings the deadline forward to ``block time + close_window - 1`` at
most: commitments stay open for that many seconds of block time, the quorum's own second the first.

A stateful strategy (a server optimiser) adds ``strategy.state_hash``: the state blob the last
finalized round's report names (absent in its first round), so the state a round starts from is
committed on-chain like everything else. ``training.lr`` may follow a schedule; the aggregator
writes each round's value into that round's config.

Secure mode (``"mode": "secure"``) adds ``"secure"`` (:class:`fedchain.secure.pipeline.SecureConfig`:
fixed point, threshold t, optional Skellam noise), ``"unmask_window"`` (seconds after the deadline for
the unmask phase, also on-chain) and ``"privacy"``: ``{"delta": 1e-5, "budget": ε or null,
"colluders": 0, "state_hash": the accountant state of the last finalized secure round or null}``.
Its strategy is always ``fedavg``: robust rules need individual updates, which secure mode hides.

``blobs.updates`` is ``"members"`` (after the round closes, registered nodes and auditors may read
update blobs with a signed GET) or ``"public"``. Before the round closes nobody may.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fedchain.errors import ConfigError, InvalidBlob

CONFIG_VERSION = 2
MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: Largest sample count a node may declare unless the config says otherwise.
DEFAULT_MAX_SAMPLES = 1_000_000
UPDATE_ACCESS = ("members", "public")
MODES = ("transparent", "secure")
#: Strategies secure mode can run: those that need only the (weighted) sum of the updates.
SECURE_STRATEGIES = ("fedavg",)


def close_window_problem(close_window: int, relay_cutoff: int) -> str | None:
    """Why ``close_window`` cannot go with ``relay_cutoff`` (the contract's ``InvalidCloseWindow``),
    or None: a window must be 0 (off) or exceed the cut-off, else bringing the deadline forward
    would close the relay at once."""
    if close_window and close_window <= relay_cutoff:
        return (f"the close window ({close_window} s) must exceed the relay cut-off ({relay_cutoff} s): "
                "bringing the deadline forward would otherwise close the relay at once")
    return None


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
    mode: str = "transparent"
    secure: Any = None  # SecureConfig in secure mode
    unmask_window: int = 0
    privacy: Mapping[str, Any] | None = None
    close_window: int = 0

    @property
    def is_secure(self) -> bool:
        return self.mode == "secure"

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
        mode = config.get("mode", "transparent")
        if mode not in MODES:
            raise fail(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        secure, unmask_window, privacy = None, 0, None
        if mode == "secure":
            from fedchain.privacy import PrivacyError
            from fedchain.secure import SecAggError
            from fedchain.secure.pipeline import SecureConfig

            if strategy["name"] not in SECURE_STRATEGIES:
                raise fail(f"strategy {strategy['name']!r} cannot run in secure mode: robust rules need each "
                           "node's update, which secure aggregation hides; use fedavg, or transparent mode")
            try:
                secure = SecureConfig.from_dict(config.get("secure"))
            except (SecAggError, ConfigError, PrivacyError) as exc:
                raise fail(f"secure: {exc.message}") from None
            unmask_window = integer(config.get("unmask_window", 0), "unmask_window", 1, 2**32 - 1)
            privacy = config.get("privacy") or {}
            if not isinstance(privacy, Mapping):
                raise fail("privacy must be an object")
        rules = cls(
            mode=mode, secure=secure, unmask_window=unmask_window, privacy=privacy,
            max_update_bytes=integer(limits.get("max_update_bytes", DEFAULT_MAX_UPDATE_BYTES),
                                     "limits.max_update_bytes", 1, 2**40),
            max_samples=integer(config.get("max_samples", 2**64 - 1), "max_samples", 1, 2**64 - 1),
            min_updates=integer(config.get("min_updates", 1), "min_updates", 1, 2**32 - 1),
            relay_cutoff=integer(relay.get("cutoff_seconds", 0), "relay.cutoff_seconds", 0, 2**32 - 1),
            selection_rate=integer(config.get("selection_rate", 0), "selection_rate", 0, 2**64 - 1),
            update_access=access,
            strategy=strategy,
            close_window=integer(config.get("close_window", 0), "close_window", 0, 2**32 - 1),
        )
        problem = close_window_problem(rules.close_window, rules.relay_cutoff)
        if problem:
            raise fail(f"close_window: {problem} (relay.cutoff_seconds)")
        return rules


SCHEDULES = ("constant", "cosine", "step")


def scheduled_lr(base_lr: float, schedule: Mapping[str, Any] | None, round_id: int) -> float:
    """The learning rate of round ``round_id`` (1-based) under ``schedule``:

    - ``{"kind": "constant"}`` (or None): ``base_lr``;
    - ``{"kind": "cosine", "rounds": T, "min_lr": m}``: ``m + (base - m) * (1 + cos(pi * (r - 1) / T)) / 2``,
      and ``m`` after round T;
    - ``{"kind": "step", "every": k, "gamma": g}``: ``base * g ** ((r - 1) // k)``.

    The value is written into the round config, so the node and ``verify`` read it, not compute it.
    """
    import math

    if not schedule or schedule.get("kind", "constant") == "constant":
        return float(base_lr)
    kind = schedule.get("kind")
    r = max(1, int(round_id))
    if kind == "cosine":
        total = int(schedule.get("rounds", 0))
        if total < 1:
            raise ConfigError("cosine schedule needs rounds >= 1", hint="--lr-schedule cosine:ROUNDS[:MIN_LR]")
        low = float(schedule.get("min_lr", 0.0))
        if r > total:
            return low
        return low + (float(base_lr) - low) * (1 + math.cos(math.pi * (r - 1) / total)) / 2
    if kind == "step":
        every = int(schedule.get("every", 0))
        if every < 1:
            raise ConfigError("step schedule needs every >= 1", hint="--lr-schedule step:EVERY:GAMMA")
        return float(base_lr) * float(schedule.get("gamma", 0.5)) ** ((r - 1) // every)
    raise ConfigError(f"unknown learning-rate schedule {kind!r}; known: {', '.join(SCHEDULES)}",
                      hint="--lr-schedule constant | cosine:ROUNDS[:MIN_LR] | step:EVERY:GAMMA")


def parse_schedule(text: str | None) -> dict[str, Any] | None:
    """``cosine:100:0.0001`` / ``step:10:0.5`` / ``constant`` (the CLI form) as a schedule document."""
    if not text or text == "constant":
        return None
    parts = text.split(":")
    try:
        if parts[0] == "cosine" and len(parts) in (2, 3):
            out: dict[str, Any] = {"kind": "cosine", "rounds": int(parts[1])}
            if len(parts) == 3:
                out["min_lr"] = float(parts[2])
        elif parts[0] == "step" and len(parts) == 3:
            out = {"kind": "step", "every": int(parts[1]), "gamma": float(parts[2])}
        else:
            raise ValueError(text)
    except ValueError:
        raise ConfigError(f"cannot read the learning-rate schedule {text!r}",
                          hint="--lr-schedule constant | cosine:ROUNDS[:MIN_LR] | step:EVERY:GAMMA") from None
    scheduled_lr(1.0, out, 1)  # validates
    return out


@dataclass(frozen=True)
class SecureSettings:
    """The aggregator's secure-mode options; :meth:`config_for` makes each round's SecureConfig.

    ``threshold`` None: ⌊n/2⌋ + 1 of the n nodes eligible when the round opens (an honest
    majority). ``noise_multiplier`` z: Skellam noise of standard deviation z · Δ₂ in the sum,
    planned over ``t - colluders - 1`` contributors (so it holds whenever the round finalizes);
    None: no DP noise."""

    clip: float = 5.0
    scale_bits: int = 20
    modulus_bits: int = 32
    threshold: int | None = None
    noise_multiplier: float | None = None
    colluders: int = 0

    def config_for(self, n_eligible: int, dim: int) -> Any:
        from fedchain.codec import FixedPointConfig, rounded_l2_bound
        from fedchain.privacy.noise import SkellamNoise
        from fedchain.secure.pipeline import SecureConfig

        fixed = FixedPointConfig(clip=float(self.clip), scale_bits=int(self.scale_bits),
                                 modulus_bits=int(self.modulus_bits))
        t = self.threshold if self.threshold is not None else n_eligible // 2 + 1
        if not 1 <= t <= max(1, n_eligible):
            raise ConfigError(f"secure threshold {t} with {n_eligible} eligible node(s)",
                              hint="--threshold must be between 1 and the number of admitted nodes")
        noise = None
        if self.noise_multiplier:
            planned = t - self.colluders - 1
            if planned < 1:
                raise ConfigError(
                    f"DP noise needs t - colluders - 1 >= 1 contributors to count (t = {t}, colluders = {self.colluders})",
                    hint="raise --threshold or lower --colluders")
            l2 = rounded_l2_bound(fixed.clip * fixed.scale, dim)
            noise = SkellamNoise.from_noise_multiplier(float(self.noise_multiplier), l2, planned)
        cfg = SecureConfig(fixed=fixed, threshold=t, noise=noise)
        return cfg
