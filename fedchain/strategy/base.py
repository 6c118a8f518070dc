"""The aggregation strategy interface (in the spirit of Flower's ``Strategy``, reduced to the part a
verifier must recompute).

A strategy is a pure function of the round's public inputs: the base model, the accepted updates
(in any order: a strategy orders them itself), its own ``params`` (written into the round config,
so committed on-chain through the config hash) and, for a stateful rule (a server optimiser), the
state the previous finalized round left (a blob whose hash the round config names). It must be
deterministic to the bit on every machine: use the helpers in :mod:`fedchain.strategy.aggregate`.

:meth:`Strategy.step` is what the round core calls; a stateless rule implements
:meth:`Strategy.aggregate` and :meth:`Strategy.weights` and inherits ``step``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from fedchain.errors import FedchainError, InvalidBlob


class AggregationError(FedchainError, ValueError):
    """The updates cannot be merged: none, duplicated nodes, bad sample counts."""


@dataclass(frozen=True)
class ClientUpdate:
    """One accepted update: the node's address, its decoded weights, its committed sample count."""

    node: str
    weights: Mapping[str, np.ndarray]
    num_samples: int


@dataclass
class StepResult:
    """What one round's merge produces."""

    #: The new global model (float32 arrays, same names and shapes as the base).
    model: dict[str, np.ndarray]
    #: Each node's effective weight in the merge (for the round report); 0 for a node a robust
    #: rule left out.
    weights: dict[str, float]
    #: A stateful rule's state after this round (float32 arrays), stored as a blob whose hash the
    #: report names and the next round's config takes as input; None for stateless rules.
    state: dict[str, np.ndarray] | None = None
    #: JSON-able facts for the report (``strategy_details``): e.g. Krum's selected nodes, clipping
    #: norms. Must be deterministic too (``verify`` compares them).
    details: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base class. Subclasses set ``name`` and implement ``aggregate`` and ``weights`` (stateless)
    or override ``step`` (stateful, or when weights and details come out of the merge itself)."""

    #: Registry name, written into round configs (``{"strategy": {"name": ..., "params": ...}}``).
    name: ClassVar[str]
    #: True for rules that need every individual update (order statistics, distances): they are
    #: available in transparent mode only (secure mode sees only the sum).
    robust: ClassVar[bool] = False
    #: True for server optimisers: ``step`` takes the previous round's state and returns the next.
    stateful: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """JSON-able parameters; ``get_strategy(self.name, self.params)`` rebuilds an equal strategy."""
        return dict(self._params)

    def config(self) -> dict[str, Any]:
        """The ``strategy`` entry of a round config."""
        return {"name": self.name, "params": self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self._params.items()))
        return f"{type(self).__name__}({args})"

    def step(
        self,
        base: Mapping[str, np.ndarray],
        updates: Sequence[ClientUpdate],
        state: Mapping[str, np.ndarray] | None = None,
    ) -> StepResult:
        """One round's merge. ``state`` is the previous round's :attr:`StepResult.state` (None in
        the first round of a stateful rule, and always for stateless ones)."""
        return StepResult(model=self.aggregate(base, updates), weights=self.weights(updates))

    def aggregate(self, base: Mapping[str, np.ndarray], updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        """The new global model (float32 arrays, same names and shapes as ``base``)."""
        return self.step(base, updates).model

    @abstractmethod
    def weights(self, updates: Sequence[ClientUpdate]) -> dict[str, float]:
        """Each node's effective weight in the merge (for the round report)."""


def ordered_updates(updates: Sequence[ClientUpdate]) -> list[ClientUpdate]:
    """Updates sorted by node address (lowercase string, ascending); rejects empty/duplicate/bad input."""
    if not updates:
        raise AggregationError("no updates to aggregate")
    seen: dict[str, str] = {}
    for u in updates:
        if not isinstance(u.node, str) or not u.node:
            raise AggregationError(f"update has no node address: {u.node!r}")
        key = u.node.lower()
        if key in seen:
            raise AggregationError(f"two updates from the same node {u.node}")
        seen[key] = u.node
        n = u.num_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise AggregationError(f"node {u.node}: num_samples must be a positive integer, got {n!r}")
    return sorted(updates, key=lambda u: u.node.lower())


def check_same_spec(base: Mapping[str, np.ndarray], updates: Sequence[ClientUpdate]) -> None:
    """Every update has exactly the base model's tensor names and shapes (InvalidBlob otherwise)."""
    want = {name: tuple(np.shape(v)) for name, v in base.items()}
    for u in updates:
        got_names = set(u.weights)
        if got_names != set(want):
            missing = sorted(set(want) - got_names)
            extra = sorted(got_names - set(want))
            parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
            raise InvalidBlob(
                f"node {u.node}: tensor names differ from the base model: " + ", ".join(parts), reason="wrong_names"
            )
        for name in sorted(want):
            shape = tuple(np.shape(u.weights[name]))
            if shape != want[name]:
                raise InvalidBlob(
                    f"node {u.node}: tensor {name!r} has shape {shape}, expected {want[name]}", reason="wrong_shape"
                )
