"""Aggregation strategies. ``get_strategy(name, params)`` builds one from a round config."""

from __future__ import annotations

from typing import Any

from fedchain.errors import ConfigError
from fedchain.strategy.aggregate import weighted_mean
from fedchain.strategy.base import AggregationError, ClientUpdate, StepResult, Strategy
from fedchain.strategy.fedavg import FedAvg

__all__ = [
    "STRATEGIES",
    "AggregationError",
    "ClientUpdate",
    "FedAvg",
    "StepResult",
    "Strategy",
    "get_strategy",
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


register(FedAvg)


def get_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """An instance of the strategy called ``name`` (ConfigError naming the known ones otherwise)."""
    cls = STRATEGIES.get(name.strip().lower()) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown aggregation strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    return cls(**(params or {}))
