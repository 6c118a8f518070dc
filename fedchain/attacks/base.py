"""The attack interface: what a hostile node does to its update, its data or its sample count.

Attacks work on **deltas** (update - base), as flat float64 vectors: :func:`flatten` and
:func:`unflatten` convert a model's named tensors (sorted by name) to one vector and back. An attack
is a class with a registry ``name``, validated ``params`` (declared in :attr:`Attack.PARAMS`) and
one or more of three hooks, each a no-op by default:

- :meth:`Attack.apply` turns the node's honestly trained delta into the hostile delta it sends.
  *Omniscient* attacks (:attr:`Attack.omniscient`: ALIE, IPM, min-max, min-sum) also read the
  honest deltas of the round (``honest``, a ``(k, d)`` array). In simulation (``fedchain
  baseline``) the harness passes the real ones. A real hostile process cannot see them (update
  blobs are sealed until the round closes), so it passes estimates: see
  :func:`fedchain.attacks.estimate.subsample_deltas` and docs/robustness.md.
- :meth:`Attack.poison` transforms the node's training data before it trains (data poisoning).
- :meth:`Attack.claim` chooses the sample count the node declares (inflated samples); the
  contract caps it at the round's ``max_samples``.

Every random choice comes from the ``numpy.random.Generator`` the caller passes, so an attack is
deterministic given its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from fedchain.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One attack parameter: its default, its type and its allowed range or choices."""

    default: Any
    kind: type = float
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


@dataclass
class AttackContext:
    """What the hostile node knows when it forges its delta."""

    #: Total number of nodes in the round (n) and hostile ones among them (f).
    n: int
    f: int
    #: Random stream of this (attack, round, node).
    rng: np.random.Generator
    #: The honest deltas the attack may read (omniscient attacks), shape (k, d); None otherwise.
    honest: np.ndarray | None = None


class Attack:
    """Base class. Subclasses set ``name`` and ``PARAMS`` and override the hooks they need."""

    name: ClassVar[str]
    #: The paper the attack comes from (shown in listings and docs).
    paper: ClassVar[str] = ""
    #: name -> :class:`Param`.
    PARAMS: ClassVar[dict[str, Param]] = {}
    #: True when :meth:`apply` needs the round's honest deltas.
    omniscient: ClassVar[bool] = False
    #: True when the attack changes the update (:meth:`apply` is not the identity).
    forges_update: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            known = ", ".join(f"{k} (default {p.default!r})" for k, p in sorted(self.PARAMS.items())) or "none"
            raise ConfigError(f"attack {self.name!r} has no parameter(s) {', '.join(unknown)}",
                              hint=f"parameters of {self.name}: {known}")
        self._params = {k: self._check(k, p, params.get(k, p.default)) for k, p in self.PARAMS.items()}

    def _check(self, key: str, p: Param, value: Any) -> Any:
        where = f"attack {self.name!r} parameter {key!r}"
        if p.choices is not None:
            if value not in p.choices:
                raise ConfigError(f"{where} must be one of {', '.join(map(str, p.choices))}, got {value!r}")
            return value
        if p.kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or int(value) != value:
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        elif p.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise ConfigError(f"{where} must be finite, got {value!r}")
        if p.low is not None and value < p.low:
            raise ConfigError(f"{where} must be >= {p.low}, got {value!r}")
        if p.high is not None and value > p.high:
            raise ConfigError(f"{where} must be <= {p.high}, got {value!r}")
        return value

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def __getitem__(self, key: str) -> Any:
        return self._params[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(self._params.items()))})"

    # --- hooks -----------------------------------------------------------------------------------
    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        """The hostile delta (flat float64) from this node's honest delta ``own``."""
        return own

    def poison(self, data: Any, task: Any, rng: np.random.Generator) -> Any:
        """The training data the node really trains on (a :class:`~fedchain.tasks.base.NodeData`)."""
        return data

    def claim(self, num_samples: int, max_samples: int) -> int:
        """The sample count the node declares (honest: its own, capped)."""
        return min(int(num_samples), int(max_samples))


# --- flat vectors ----------------------------------------------------------------------------------
def flatten(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The tensors, sorted by name, as one float64 vector."""
    if not arrays:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).reshape(-1) for k in sorted(arrays)])


def unflatten(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split ``vector`` back into float32 tensors with the names and shapes of ``like``."""
    out, i = {}, 0
    vector = np.asarray(vector, dtype=np.float64)
    for k in sorted(like):
        shape = np.shape(like[k])
        size = int(np.prod(shape, dtype=np.int64))
        out[k] = vector[i : i + size].reshape(shape).astype(np.float32)
        i += size
    if i != vector.size:
        raise ValueError(f"vector has {vector.size} entries, the model {i}")
    return out


def delta_of(update: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> np.ndarray:
    """``flatten(update) - flatten(base)``."""
    return flatten(update) - flatten(base)


def apply_delta(base: Mapping[str, np.ndarray], delta: np.ndarray) -> dict[str, np.ndarray]:
    """``base + delta`` as float32 tensors named like ``base``."""
    return unflatten(flatten(base) + np.asarray(delta, dtype=np.float64), base)


def honest_stats(honest: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise mean and (population) standard deviation of the honest deltas."""
    if honest is None or np.ndim(honest) != 2 or len(honest) == 0:
        raise ConfigError("this attack needs the round's honest updates (or estimates of them)")
    h = np.asarray(honest, dtype=np.float64)
    return h.mean(axis=0), h.std(axis=0)
