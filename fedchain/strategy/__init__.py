"""Aggregation strategies. ``get_strategy(name, params)`` builds one from a round config."""

from __future__ import annotations

from typing import Any

from fedchain.errors import ConfigError
from fedchain.strategy.aggregate import weighted_mean
from fedchain.strategy.base import AggregationError, ClientUpdate, StepResult, Strategy
from fedchain.strategy.bulyan import Bulyan
from fedchain.strategy.centered_clip import CenteredClip
from fedchain.strategy.fedadam import FedAdam
from fedchain.strategy.fedavg import FedAvg
from fedchain.strategy.fedavgm import FedAvgM
from fedchain.strategy.fedprox import FedProx
from fedchain.strategy.fedyogi import FedYogi
from fedchain.strategy.krum import Krum
from fedchain.strategy.median import Median
from fedchain.strategy.multi_krum import MultiKrum
from fedchain.strategy.robust import PRE_AGGREGATORS, RobustStrategy
from fedchain.strategy.serveropt import ServerOptimizer
from fedchain.strategy.trimmed_mean import TrimmedMean

__all__ = [
    "PRE_AGGREGATORS",
    "STRATEGIES",
    "AggregationError",
    "Bulyan",
    "CenteredClip",
    "ClientUpdate",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "Krum",
    "Median",
    "MultiKrum",
    "RobustStrategy",
    "ServerOptimizer",
    "StepResult",
    "Strategy",
    "TrimmedMean",
    "get_strategy",
    "param_names",
    "register",
    "weighted_mean",
]

#: name -> Strategy subclass.
STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to :data:`STRATEGIES` under ``cls.name``."""
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls
    return cls


for _cls in (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, Median, TrimmedMean, Krum, MultiKrum, Bulyan, CenteredClip):
    register(_cls)


def param_names(name: str) -> list[str]:
    """The parameter names the strategy called ``name`` accepts (ConfigError if it is unknown)."""
    cls = _lookup(name)
    names = getattr(cls, "param_names", None)
    return list(names()) if callable(names) else []


def _lookup(name: str) -> type[Strategy]:
    cls = STRATEGIES.get(name.strip().lower()) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown aggregation strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    return cls


def get_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """An instance of the strategy called ``name`` (ConfigError naming the known ones otherwise)."""
    return _lookup(name)(**(params or {}))
