"""Distributed differential privacy for secure mode: clipping, per-node integer noise, accounting.

Pure functions, no I/O. docs/privacy.md describes the mechanism, the accounting and its limits.

- :mod:`fedchain.privacy.clipping`: L2 clipping of a node's update (before the fixed-point codec).
- :mod:`fedchain.privacy.noise`: each node's share of Skellam noise (Agarwal, Kairouz, Liu,
  NeurIPS 2021), integer, from a seeded generator; the shares sum to the configured noise.
- :mod:`fedchain.privacy.accountant`: RDP accounting (Google's ``dp-accounting`` for the
  RDP -> (epsilon, delta) conversion), a JSON accountant state, and the budget check.
"""

from __future__ import annotations

from fedchain.errors import FedchainError

__all__ = ["PrivacyBudgetExceeded", "PrivacyError"]


class PrivacyError(FedchainError):
    """Bad privacy parameters or accountant state."""


class PrivacyBudgetExceeded(PrivacyError):
    """Opening the next round would take the federation past its (epsilon, delta) budget.

    ``epsilon`` is what the composition would reach, ``budget`` the federation's limit."""

    http_status = 409

    def __init__(self, message: str, *, epsilon: float, budget: float, delta: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.epsilon = epsilon
        self.budget = budget
        self.delta = delta
        self.reason = "privacy_budget_exceeded"
