"""RDP accounting of the distributed Skellam mechanism, as a JSON document anyone can recompute.

Neighbouring relation: **user level, add/remove one node's whole update** in a round. One node's
encoded input has L2 norm at most Delta_2 = :func:`fedchain.codec.rounded_l2_bound` (C * 2^k, d,
beta) (conditional rounding makes that exact) and L1 norm at most Delta_1 = Delta_2 *
min(sqrt(d), Delta_2) (integer units). The summed noise is Skellam with per-coordinate variance mu;
the accountant counts only the shares of honest nodes other than the one whose privacy is at stake
(:meth:`RoundPrivacy.for_round`: contributors - colluders - 1), so a node's own noise and the noise of
nodes colluding with the aggregator are never credited.

Per round, for integer orders alpha > 1 (Agarwal, Kairouz, Liu, NeurIPS 2021, Theorem 3.5 /
Corollary 3.6, with mu the variance of the summed Skellam noise)::

    eps_alpha = alpha Delta_2^2 / (2 mu) + min( ((2 alpha - 1) Delta_2^2 + 6 Delta_1) / (4 mu^2),
                                                3 Delta_1 / (2 mu) )

Rounds compose by adding RDP curves. The conversion to (epsilon, delta) is
``dp_accounting.rdp.rdp_privacy_accountant.compute_epsilon`` (Google's ``dp-accounting``; the
bound of Canonne, Kamath, Steinke 2020 / Asoodeh et al. 2020: eps = min_alpha eps_alpha +
log(1 - 1/alpha) - log(delta * alpha) / (alpha - 1)). No amplification by sampling is claimed:
the figures hold for any selection of nodes.

State (``fedchain/privacy/v1``)::

    {"version": "fedchain/privacy/v1", "accounting": "rdp", "neighbouring": "add_remove_one_node",
     "delta": 1e-05, "orders": [2, 3, ...],
     "rounds": [{"round": 1, "mechanism": "skellam", "l1_sensitivity": ..., "l2_sensitivity": ...,
                 "variance": ..., "epsilon": ...}],
     "rdp": [...], "epsilon": ..., "order": ...}

Everything in it except ``rounds[*].{round, mechanism, l1_sensitivity, l2_sensitivity, variance}``,
``delta`` and ``orders`` is derived, and :func:`verify_state` recomputes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from fedchain.codec import ROUNDING_BETA, FixedPointConfig, rounded_l2_bound
from fedchain.privacy import PrivacyBudgetExceeded, PrivacyError
from fedchain.privacy.noise import SkellamNoise

__all__ = [
    "DEFAULT_ORDERS",
    "PrivacyBudget",
    "RoundPrivacy",
    "STATE_VERSION",
    "ensure_within_budget",
    "epsilon_from_rdp",
    "epsilon_table",
    "new_state",
    "record_round",
    "skellam_rdp",
    "verify_state",
    "would_exceed",
]

STATE_VERSION = "fedchain/privacy/v1"
#: Integer RDP orders (the Skellam bound is stated for integer alpha).
DEFAULT_ORDERS: tuple[int, ...] = tuple(range(2, 129)) + (160, 192, 256, 384, 512, 768, 1024, 2048, 4096)
_REL_TOL = 1e-9


@dataclass(frozen=True)
class PrivacyBudget:
    """The federation's total budget: (epsilon, delta)."""

    epsilon: float
    delta: float

    @classmethod
    def coerce(cls, obj: Any) -> "PrivacyBudget":
        if isinstance(obj, PrivacyBudget):
            return obj
        if isinstance(obj, Mapping) and set(obj) == {"epsilon", "delta"}:
            return cls(float(obj["epsilon"]), float(obj["delta"]))
        raise PrivacyError(f"a privacy budget is {{epsilon, delta}}, got {obj!r}")


@dataclass(frozen=True)
class RoundPrivacy:
    """One round's mechanism as the accountant charges it (integer units)."""

    l2_sensitivity: float
    l1_sensitivity: float
    variance: float
    mechanism: str = "skellam"

    def __post_init__(self) -> None:
        if self.mechanism != "skellam":
            raise PrivacyError(f"unknown mechanism {self.mechanism!r}; only skellam is accounted")
        for name in ("l2_sensitivity", "l1_sensitivity", "variance"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PrivacyError(f"{name} must be a non-negative finite number, got {v!r}")

    @classmethod
    def for_round(
        cls,
        config: FixedPointConfig,
        dim: int,
        noise: SkellamNoise,
        *,
        contributors: int | None = None,
        colluders: int = 0,
        beta: float = ROUNDING_BETA,
    ) -> "RoundPrivacy":
        """The mechanism of a round with ``contributors`` nodes adding noise shares (default:
        the plan, ``noise.min_contributors + colluders + 1``): counted variance =
        per-node variance * (contributors - colluders - 1)."""
        if contributors is None:
            contributors = noise.min_contributors + colluders + 1
        counted = max(0, contributors - colluders - 1)
        l2 = rounded_l2_bound(config.clip * config.scale, dim, beta)
        l1 = l2 * min(math.sqrt(dim), l2)
        return cls(l2_sensitivity=l2, l1_sensitivity=l1, variance=noise.per_node_variance * counted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "l1_sensitivity": float(self.l1_sensitivity),
            "l2_sensitivity": float(self.l2_sensitivity),
            "mechanism": self.mechanism,
            "variance": float(self.variance),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> "RoundPrivacy":
        keys = {"l1_sensitivity", "l2_sensitivity", "mechanism", "variance"}
        if not isinstance(obj, Mapping) or not keys <= set(obj):
            raise PrivacyError(f"round privacy entry must have {sorted(keys)}, got {obj!r}")
        return cls(
            l2_sensitivity=obj["l2_sensitivity"], l1_sensitivity=obj["l1_sensitivity"], variance=obj["variance"], mechanism=obj["mechanism"]
        )


def skellam_rdp(alpha: int, l1: float, l2: float, mu: float) -> float:
    """RDP of order ``alpha`` of the Skellam mechanism (see module docstring); inf without noise."""
    if l2 == 0 and l1 == 0:
        return 0.0
    if mu <= 0:
        return math.inf
    a = float(alpha)
    return a * l2 * l2 / (2.0 * mu) + min(((2.0 * a - 1.0) * l2 * l2 + 6.0 * l1) / (4.0 * mu * mu), 3.0 * l1 / (2.0 * mu))


def _round_rdp(params: RoundPrivacy, orders: Sequence[int]) -> list[float]:
    return [skellam_rdp(a, params.l1_sensitivity, params.l2_sensitivity, params.variance) for a in orders]


def epsilon_from_rdp(rdp: Sequence[float], orders: Sequence[int], delta: float) -> tuple[float, int]:
    """(epsilon, best order) for an RDP curve, with dp-accounting's conversion."""
    if any(math.isinf(r) for r in rdp) and all(math.isinf(r) for r in rdp):
        return math.inf, int(orders[0])
    try:
        from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon
    except ImportError as exc:  # pragma: no cover - install problem
        raise PrivacyError(
            "the dp-accounting package is not installed", hint="make install (requirements-nodeps.txt pins dp-accounting)"
        ) from exc
    eps, order = compute_epsilon(list(orders), list(rdp), delta)
    return float(eps), int(order)


def _check_orders(orders: Iterable[Any]) -> list[int]:
    out = list(orders)
    if not out or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 2 for a in out) or out != sorted(set(out)):
        raise PrivacyError("RDP orders must be a non-empty increasing list of integers >= 2")
    return out


def new_state(delta: float, orders: Sequence[int] = DEFAULT_ORDERS) -> dict[str, Any]:
    """An accountant state with no rounds."""
    if not (isinstance(delta, float) and 0 < delta < 1):
        raise PrivacyError(f"delta must be a float in (0, 1), got {delta!r}")
    orders = _check_orders(orders)
    return {
        "accounting": "rdp",
        "delta": delta,
        "epsilon": 0.0,
        "neighbouring": "add_remove_one_node",
        "order": orders[0],
        "orders": orders,
        "rdp": [0.0] * len(orders),
        "rounds": [],
        "version": STATE_VERSION,
    }


def _check_state(state: Any) -> None:
    keys = {"accounting", "delta", "epsilon", "neighbouring", "order", "orders", "rdp", "rounds", "version"}
    if not isinstance(state, Mapping) or set(state) != keys or state["version"] != STATE_VERSION:
        raise PrivacyError(f"not a {STATE_VERSION} accountant state")
    if state["accounting"] != "rdp" or state["neighbouring"] != "add_remove_one_node":
        raise PrivacyError("accountant state: unsupported accounting or neighbouring relation")
    _check_orders(state["orders"])
    if len(state["rdp"]) != len(state["orders"]):
        raise PrivacyError("accountant state: rdp and orders differ in length")


def _composed(state: Mapping[str, Any], extra: RoundPrivacy | None = None) -> list[float]:
    orders = state["orders"]
    total = [0.0] * len(orders)
    entries = [RoundPrivacy.from_dict(r) for r in state["rounds"]] + ([extra] if extra is not None else [])
    for params in entries:  # composition in round order, each round's curve added
        total = [t + r for t, r in zip(total, _round_rdp(params, orders))]
    return total


def record_round(state: Mapping[str, Any], round_id: int, params: RoundPrivacy) -> dict[str, Any]:
    """A new state with round ``round_id`` composed in (the input is not changed)."""
    _check_state(state)
    if any(r["round"] == round_id for r in state["rounds"]):
        raise PrivacyError(f"round {round_id} is already in the accountant state")
    orders = state["orders"]
    own_eps, _ = epsilon_from_rdp(_round_rdp(params, orders), orders, state["delta"])
    rounds = [dict(r) for r in state["rounds"]] + [{"round": int(round_id), **params.to_dict(), "epsilon": own_eps}]
    new = dict(state, rounds=rounds)
    new["rdp"] = _composed(new)
    new["epsilon"], new["order"] = epsilon_from_rdp(new["rdp"], orders, state["delta"])
    return new


def verify_state(state: Mapping[str, Any]) -> float:
    """Recompute every derived number of ``state`` from its round parameters; returns epsilon.
    Raises PrivacyError if one differs (relative tolerance 1e-9: libm may differ in the last ulp)."""
    _check_state(state)
    orders = state["orders"]
    rdp = _composed(state)

    def close(a: float, b: float) -> bool:
        return (math.isinf(a) and math.isinf(b)) or math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)

    if not all(close(a, b) for a, b in zip(rdp, state["rdp"])):
        raise PrivacyError("accountant state: the composed RDP curve does not match the rounds")
    for entry in state["rounds"]:
        eps, _ = epsilon_from_rdp(_round_rdp(RoundPrivacy.from_dict(entry), orders), orders, state["delta"])
        if not close(eps, entry["epsilon"]):
            raise PrivacyError(f"accountant state: round {entry['round']} epsilon does not match its parameters")
    eps, _ = epsilon_from_rdp(rdp, orders, state["delta"])
    if not close(eps, state["epsilon"]):
        raise PrivacyError("accountant state: total epsilon does not match the rounds")
    return eps


def projected_epsilon(state: Mapping[str, Any], params: RoundPrivacy, delta: float | None = None) -> float:
    """Epsilon (at the state's delta, or ``delta``) after composing one more round ``params``."""
    _check_state(state)
    eps, _ = epsilon_from_rdp(_composed(state, params), state["orders"], state["delta"] if delta is None else delta)
    return eps


def would_exceed(state: Mapping[str, Any], next_round_params: RoundPrivacy, budget: PrivacyBudget | Mapping[str, float]) -> bool:
    """True if composing ``next_round_params`` would take epsilon (at the budget's delta) past the
    budget's epsilon: the aggregator must then refuse to open the round."""
    b = PrivacyBudget.coerce(budget)
    return projected_epsilon(state, next_round_params, b.delta) > b.epsilon


def ensure_within_budget(state: Mapping[str, Any], next_round_params: RoundPrivacy, budget: PrivacyBudget | Mapping[str, float]) -> None:
    """Raise :class:`PrivacyBudgetExceeded` where :func:`would_exceed` is true."""
    b = PrivacyBudget.coerce(budget)
    eps = projected_epsilon(state, next_round_params, b.delta)
    if eps > b.epsilon:
        raise PrivacyBudgetExceeded(
            f"opening round {len(state['rounds']) + 1} would spend epsilon {eps:.4g} at delta {b.delta:g}, "
            f"past the federation's budget of {b.epsilon:g}",
            epsilon=eps,
            budget=b.epsilon,
            delta=b.delta,
            hint="raise the noise (variance), lower the clip bound, or end the federation",
        )


def epsilon_table(
    nodes: Sequence[int] = (5, 10, 20, 50),
    noise_on_mean: Sequence[float] = (0.01, 0.05, 0.1),
    rounds: Sequence[int] = (1, 10, 100),
    *,
    dim: int = 10_000,
    clip: float = 1.0,
    scale_bits: int = 16,
    delta: float = 1e-5,
) -> list[dict[str, Any]]:
    """The table of docs/privacy.md: epsilon at ``delta`` after R rounds in which n nodes all commit,
    for a noise level given as the per-coordinate standard deviation of the noise on the *mean*
    update relative to the clip bound (sigma_mean / C = z / n, z the noise multiplier of the sum).
    Noise counted: the shares of n - 1 nodes (none assumed colluding)."""
    config = FixedPointConfig(clip=clip, scale_bits=scale_bits)
    rows = []
    for n in nodes:
        for level in noise_on_mean:
            z = level * n
            l2 = rounded_l2_bound(clip * config.scale, dim)
            noise = SkellamNoise.from_noise_multiplier(z, l2, min_contributors=max(1, n - 1))
            params = RoundPrivacy.for_round(config, dim, noise, contributors=n)
            state = new_state(delta)
            per_round = _round_rdp(params, state["orders"])
            eps = {
                r: epsilon_from_rdp([r * x for x in per_round], state["orders"], delta)[0] for r in rounds
            }
            rows.append({"nodes": n, "noise_on_mean": level, "noise_multiplier": z, "epsilon": eps})
    return rows


if __name__ == "__main__":  # python -m fedchain.privacy.accountant: the docs/privacy.md table
    rows = epsilon_table()
    rs = sorted(rows[0]["epsilon"])
    print("| nodes | sigma_mean / C | z | " + " | ".join(f"eps after {r}" for r in rs) + " |")
    print("|---|---|---|" + "---|" * len(rs))
    for row in rows:
        cells = " | ".join(f"{row['epsilon'][r]:.3g}" for r in rs)
        print(f"| {row['nodes']} | {row['noise_on_mean']} | {row['noise_multiplier']:.3g} | {cells} |")
