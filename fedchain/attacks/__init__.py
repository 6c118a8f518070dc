"""Hostile-node behaviours for robustness experiments. ``get_attack(name, params)`` builds one.

Each attack lives in its own module, citing its paper; :mod:`fedchain.attacks.base` describes the
interface (deltas as flat vectors; ``apply``, ``poison`` and ``claim`` hooks). ``fedchain
baseline --attack NAME --byzantine K`` runs them in simulation (the omniscient ones see the real
honest updates); ``fedchain node --attack NAME`` runs one as a real process (estimating what it
cannot see). See docs/robustness.md.
"""

from __future__ import annotations

from typing import Any, Iterable

from fedchain.attacks.alie import ALIE, alie_z
from fedchain.attacks.base import (Attack, AttackContext, Param, apply_delta, delta_of, flatten, honest_stats,
                                   unflatten)
from fedchain.attacks.data_poison import DataPoison
from fedchain.attacks.inflate import InflatedSamples
from fedchain.attacks.ipm import IPM
from fedchain.attacks.min_max import MinMax
from fedchain.attacks.min_sum import MinSum
from fedchain.attacks.noise import GaussianNoise
from fedchain.attacks.scaling import Scaling
from fedchain.attacks.sign_flip import SignFlip
from fedchain.errors import ConfigError

__all__ = ["ATTACKS", "ALIE", "Attack", "AttackContext", "DataPoison", "GaussianNoise", "IPM", "InflatedSamples",
           "MinMax", "MinSum", "Param", "Scaling", "SignFlip", "alie_z", "apply_delta", "delta_of", "flatten",
           "get_attack", "honest_stats", "parse_params", "register", "unflatten"]

#: name -> Attack subclass.
ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    """Class decorator adding an attack to :data:`ATTACKS` under ``cls.name``."""
    if cls.name in ATTACKS and ATTACKS[cls.name] is not cls:
        raise ValueError(f"attack name {cls.name!r} is already registered")
    ATTACKS[cls.name] = cls
    return cls


for _cls in (SignFlip, Scaling, GaussianNoise, DataPoison, InflatedSamples, ALIE, IPM, MinMax, MinSum):
    register(_cls)


def get_attack(name: str, params: dict[str, Any] | None = None) -> Attack:
    """An instance of the attack called ``name`` (ConfigError naming the known ones otherwise)."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    cls = ATTACKS.get(key) if key else None
    if cls is None:
        raise ConfigError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    return cls(**(params or {}))


def parse_params(pairs: Iterable[str] | None, *, what: str = "attack") -> dict[str, Any]:
    """``["k=10", "mode=add"]`` -> ``{"k": 10, "mode": "add"}`` (values parsed as JSON, else strings)."""
    from fedchain.cliutil import parse_key_values

    return parse_key_values(pairs, option=f"--{what}-param")
