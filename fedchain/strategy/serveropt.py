"""The common frame of the server optimisers (FedAvgM, FedAdam, FedYogi).

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2: the server forms the pseudo-gradient
``Delta_t`` (the average of the clients' model changes ``x_i - x_t``) and feeds it to an optimiser
whose state (first moment m, second moment v) persists from round to round.

Here ``Delta_t`` is the **sample-weighted** mean of the deltas ``float64(update) - float64(base)``
in node order (:func:`~fedchain.strategy.aggregate.weighted_mean_f64`, sample counts capped by the
round's ``max_samples`` before they reach the strategy). The state is a dict of float32 arrays,
``m.<tensor>`` (and ``v.<tensor>`` for the adaptive rules), stored as a blob that the round report
names and the next round's config takes as input; ``verify`` recomputes it. In the first round
(state None) m = 0 and v = tau^2 (Algorithm 2's ``v_{-1} >= tau^2``).

Determinism: every operation is elementwise in float64 (one rounding each, no reductions), the new
m and v are rounded to float32 *before* the model step uses them, so the model is a function of the
base and the stored state: ``x_{t+1} = float32(x_t + eta * step(m_t, v_t))``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from fedchain.strategy.aggregate import as_f64, fixed_sum, weighted_mean_f64
from fedchain.strategy.base import AggregationError, ClientUpdate, StepResult, Strategy, check_same_spec, ordered_updates
from fedchain.strategy.params import Param, check_params
from fedchain.strategy.points import delta_of

SERVER_LR = "server_lr"


class ServerOptimizer(Strategy):
    """Subclasses set ``name``, ``PARAMS``, ``MOMENTS`` (``("m",)`` or ``("m", "v")``) and ``update``."""

    stateful = True
    PARAMS: ClassVar[dict[str, Param]] = {}
    MOMENTS: ClassVar[tuple[str, ...]] = ("m", "v")

    def __init__(self, **params: Any) -> None:
        super().__init__(**check_params(self.name, params, self.PARAMS))

    @classmethod
    def param_names(cls) -> list[str]:
        return sorted(cls.PARAMS)

    def initial(self, moment: str, shape: tuple[int, ...]) -> np.ndarray:
        """The state of ``moment`` before the first round (float64)."""
        if moment == "v":
            tau = np.float64(self._params["tau"])
            return np.full(shape, tau * tau, dtype=np.float64)
        return np.zeros(shape, dtype=np.float64)

    @abstractmethod
    def update(self, delta: np.ndarray, prev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The new moments (float64; the caller rounds them to float32) from the pseudo-gradient
        ``delta`` of one tensor and the previous moments (float64 values of the stored float32)."""

    @abstractmethod
    def direction(self, moments: dict[str, np.ndarray]) -> np.ndarray:
        """The model step before the server learning rate, from the float32-rounded moments (as float64)."""

    def read_state(self, base: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray] | None) -> dict[str, dict[str, np.ndarray]]:
        names = sorted(base)
        if state is None:
            return {k: {m: self.initial(m, tuple(np.shape(base[k]))) for m in self.MOMENTS} for k in names}
        want = {f"{m}.{k}" for k in names for m in self.MOMENTS}
        got = set(state)
        if got != want:
            missing, extra = sorted(want - got), sorted(got - want)
            raise AggregationError(f"strategy {self.name}: the server state does not match the model"
                                   + (f"; missing {missing[:3]}" if missing else "")
                                   + (f"; unexpected {extra[:3]}" if extra else ""))
        out: dict[str, dict[str, np.ndarray]] = {}
        for k in names:
            out[k] = {}
            for m in self.MOMENTS:
                a = np.asarray(state[f"{m}.{k}"])
                if tuple(a.shape) != tuple(np.shape(base[k])) or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                    raise AggregationError(f"strategy {self.name}: state {m}.{k} has shape {a.shape} and dtype "
                                           f"{a.dtype}, expected finite floats of shape {tuple(np.shape(base[k]))}")
                out[k][m] = as_f64(a)
        return out

    def step(
        self,
        base: Mapping[str, np.ndarray],
        updates: Sequence[ClientUpdate],
        state: Mapping[str, np.ndarray] | None = None,
    ) -> StepResult:
        ordered = ordered_updates(updates)
        check_same_spec(base, ordered)
        names = sorted(base)
        samples = [int(u.num_samples) for u in ordered]
        deltas = [delta_of(u.weights, base, names) for u in ordered]
        return self.finish(base, ordered, lambda k: weighted_mean_f64([d[k] for d in deltas], samples), state)

    def finish(
        self,
        base: Mapping[str, np.ndarray],
        ordered: Sequence[ClientUpdate],
        pseudo_gradient: Callable[[str], np.ndarray],
        state: Mapping[str, np.ndarray] | None,
    ) -> StepResult:
        """The optimiser step from the pseudo-gradient of each tensor (float64, in name order):
        shared by :meth:`step` and the aggregator's streaming merge, which sums as it reads."""
        prev = self.read_state(base, state)
        eta = np.float64(self._params[SERVER_LR])
        model: dict[str, np.ndarray] = {}
        new_state: dict[str, np.ndarray] = {}
        sq_norm = np.float64(0.0)
        for k in sorted(base):
            pseudo = pseudo_gradient(k)
            sq_norm = sq_norm + fixed_sum(np.multiply(pseudo, pseudo))
            moments = self.update(pseudo, prev[k])
            rounded = {}
            for m in self.MOMENTS:
                r32 = moments[m].astype(np.float32)
                new_state[f"{m}.{k}"] = r32
                rounded[m] = as_f64(r32)
            stepv = np.multiply(self.direction(rounded), eta)
            model[k] = np.add(as_f64(base[k]), stepv).astype(np.float32)
        return StepResult(model=model, weights=self.weights(ordered), state=new_state,
                          details={"pseudo_gradient_norm": float(np.sqrt(sq_norm)), "first_round": state is None})

    def weights(self, updates: Sequence[ClientUpdate]) -> dict[str, float]:
        """Each node's share of the pseudo-gradient: its (capped) sample count over the total."""
        ordered = ordered_updates(updates)
        total = sum(int(u.num_samples) for u in ordered)
        return {u.node: int(u.num_samples) / total for u in ordered}
