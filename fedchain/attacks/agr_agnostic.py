"""Shared part of min-max and min-sum: Algorithm 1 of Shejwalkar & Houmansadr (NDSS 2021).

Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks and
Defenses for Federated Learning", NDSS 2021, section IV-B ("AGR-agnostic" attacks) and
Algorithm 1. The hostile vector is ``mu + gamma * p`` with mu the honest mean and p a fixed
perturbation direction:

- ``unit``: ``-mu / ||mu||`` (inverse unit vector);
- ``std``: ``-sigma`` (inverse coordinate-wise standard deviation; the paper's default);
- ``sign``: ``-sign(mu)``.

gamma is the largest value, found by the paper's halving search from ``gamma_init`` (each try
moves gamma by half the step, up after a success and down after a failure, and the step halves)
to a precision ``tau``, for which an oracle still accepts the vector: min-max (the largest distance to
any honest delta is at most the largest distance between two honest deltas) or min-sum (the sum
of squared distances to the honest deltas is at most the largest such sum of an honest delta).
The search runs at most ``max_iter`` halvings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from fedchain.attacks.base import Attack, AttackContext, Param, honest_stats

PERTURBATIONS = ("std", "unit", "sign")


def perturbation(honest: np.ndarray, kind: str) -> np.ndarray:
    mu, sigma = honest_stats(honest)
    if kind == "unit":
        norm = float(np.linalg.norm(mu))
        return -mu / norm if norm > 0 else np.zeros_like(mu)
    if kind == "std":
        return -sigma
    if kind == "sign":
        return -np.sign(mu)
    raise ValueError(f"unknown perturbation {kind!r}")


def pairwise_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` and ``b`` (exact, no expansion)."""
    return np.array([[float(np.sum((x - y) ** 2)) for y in b] for x in a])


def gamma_search(accept: Callable[[float], bool], gamma_init: float, tau: float, max_iter: int) -> float:
    """Algorithm 1's search: the largest accepted gamma it finds (0 if none)."""
    # As the authors' code does: the step starts at gamma_init, so the search reaches (0, 2 gamma_init).
    gamma, step, succ = float(gamma_init), float(gamma_init), 0.0
    for _ in range(max_iter):
        if abs(succ - gamma) <= tau:
            break
        if accept(gamma):
            succ = gamma
            gamma += step / 2.0
        else:
            gamma -= step / 2.0
        step /= 2.0
    return succ


class AgrAgnostic(Attack, ABC):
    """Base of :class:`MinMax` and :class:`MinSum` (subclasses define :meth:`accepts`)."""

    omniscient = True
    PARAMS = {
        "perturbation": Param("std", str, choices=PERTURBATIONS, help="direction p of mu + gamma p"),
        "gamma_init": Param(10.0, float, low=0.0, help="first gamma tried (the paper's 10)"),
        "tau": Param(1e-5, float, low=0.0, help="search precision on gamma"),
        "max_iter": Param(60, int, low=1, high=10_000, help="bound on the number of halvings"),
    }

    @abstractmethod
    def accepts(self, candidate: np.ndarray, honest: np.ndarray, d_hh: np.ndarray) -> bool:
        """Whether ``candidate`` passes the oracle (min-max: max distance; min-sum: sum of squares)."""

    def search(self, honest: np.ndarray) -> tuple[np.ndarray, float]:
        """The hostile vector and its gamma."""
        h = np.asarray(honest, dtype=np.float64)
        mu, _ = honest_stats(h)
        p = perturbation(h, self["perturbation"])
        d_hh = pairwise_sq_dists(h, h)
        gamma = gamma_search(lambda g: self.accepts(mu + g * p, h, d_hh), self["gamma_init"], self["tau"],
                             self["max_iter"])
        return mu + gamma * p, gamma

    def apply(self, own: np.ndarray, ctx: AttackContext) -> np.ndarray:
        return self.search(ctx.honest)[0]
