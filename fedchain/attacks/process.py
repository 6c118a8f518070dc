"""A hostile node as a real process: ``fedchain node --attack NAME --attack-param KEY=VALUE``.

The participant calls :meth:`Hostile.poison` on its data once, trains as usual, then
:meth:`Hostile.forge` turns the trained model into the weights it uploads and
:meth:`Hostile.claim` picks the sample count it commits. The upload itself is well formed (its own
identity, the right tensor names and shapes), so the aggregator accepts it and ``verify``
recomputes the round exactly like an honest one: the harm is in the numbers.

Besides the attack's own parameters, ``--attack-param`` takes these harness keys:

- ``n`` (default: ``--num-shards``) and ``f`` (default 1): the federation size and the number of
  hostile nodes the attack assumes (ALIE's z_max);
- ``estimate_k`` (4) and ``estimate_frac`` (0.5): an omniscient attack (ALIE, IPM, min-max,
  min-sum) cannot see the honest updates, which are sealed until the round closes, so the node
  trains ``estimate_k`` extra copies of the base model on random ``estimate_frac`` subsamples of
  its data and uses their deltas in their place (:func:`~fedchain.attacks.estimate.subsample_deltas`);
- ``collude_dir`` and ``collude_wait`` (20 s): colluding hostile nodes on one machine also swap
  their own honest deltas through this folder (:class:`~fedchain.attacks.estimate.SharedFolder`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from fedchain.attacks import AttackContext, apply_delta, delta_of, get_attack, parse_params
from fedchain.attacks.estimate import SharedFolder, subsample_deltas
from fedchain.errors import ConfigError

HARNESS_KEYS = ("n", "f", "estimate_k", "estimate_frac", "collude_dir", "collude_wait")


class Hostile:
    """One hostile node's behaviour, built from the command line."""

    def __init__(self, name: str, pairs: Iterable[str] | Mapping[str, Any] | None, *, num_shards: int) -> None:
        given = dict(pairs) if isinstance(pairs, Mapping) else parse_params(pairs)
        harness = {k: given.pop(k) for k in HARNESS_KEYS if k in given}
        self.attack = get_attack(name, given)
        self.n = int(harness.get("n", max(1, num_shards)))
        self.f = int(harness.get("f", 1))
        self.estimate_k = int(harness.get("estimate_k", 4))
        self.estimate_frac = float(harness.get("estimate_frac", 0.5))
        if not (self.n >= 1 and 0 <= self.f <= self.n):
            raise ConfigError(f"--attack-param n={self.n} f={self.f}: need n >= 1 and 0 <= f <= n")
        if self.estimate_k < 1 or not 0.0 < self.estimate_frac <= 1.0:
            raise ConfigError("--attack-param estimate_k must be >= 1 and estimate_frac in (0, 1]")
        folder = harness.get("collude_dir")
        self.shared = SharedFolder(folder, wait_seconds=float(harness.get("collude_wait", 20.0))) if folder else None

    @property
    def name(self) -> str:
        return self.attack.name

    def describe(self) -> str:
        extra = f", estimating honest updates from {self.estimate_k} subsamples" if self.attack.omniscient else ""
        if self.attack.omniscient and self.shared is not None:
            extra += f" and colluders' updates in {self.shared.folder}"
        return f"HOSTILE node: attack {self.attack!r} (n={self.n}, f={self.f}{extra})"

    def poison(self, data: Any, task: Any, seed: int) -> Any:
        return self.attack.poison(data, task, np.random.default_rng(seed))

    def claim(self, num_samples: int, max_samples: int) -> int:
        return self.attack.claim(num_samples, max_samples)

    def forge(self, *, task: Any, make_model: Callable[[], Any], base: Mapping[str, np.ndarray],
              trained: Mapping[str, np.ndarray], data: Any, training: Mapping[str, Any], seed: int,
              round_id: int, me: str) -> dict[str, np.ndarray]:
        """The weights to upload, from the honestly ``trained`` ones."""
        if not self.attack.forges_update:
            return dict(trained)
        own = delta_of(trained, base)
        honest = None
        if self.attack.omniscient:
            honest = subsample_deltas(task, make_model, base, data, training=training, seed=seed,
                                      k=self.estimate_k, frac=self.estimate_frac)
            if self.shared is not None:
                others = self.shared.exchange(round_id, me, own, expect=self.f)
                honest = np.concatenate([honest, others])
        ctx = AttackContext(n=self.n, f=self.f, rng=np.random.default_rng(seed), honest=honest)
        return apply_delta(base, self.attack.apply(own, ctx))
