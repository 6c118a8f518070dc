"""The aggregator: opens rounds, checks updates against commitments, merges, finalizes.

The names below load on first use, so a node that needs only ``fedchain.aggregator.config``
does not import the merge code and the strategies."""

from typing import Any

__all__ = ["Aggregator", "RoundComputation", "RoundSummary", "UpdateDecision", "compute_round"]

_WHERE = {"Aggregator": "service", "RoundSummary": "service", "RoundComputation": "compute",
          "UpdateDecision": "compute", "compute_round": "compute"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"fedchain.aggregator.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'fedchain.aggregator' has no attribute {name!r}")
