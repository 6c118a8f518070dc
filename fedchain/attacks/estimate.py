"""What a real hostile process uses in place of the honest updates it cannot see.

An omniscient attack (ALIE, IPM, min-max, min-sum) reads the round's honest deltas. In
``fedchain baseline`` the harness hands them over. A real node cannot: update blobs are sealed
until the round closes, and every commitment is fixed before anyone may read another's blob. A
hostile node therefore estimates them:

- :func:`subsample_deltas`: it trains the round's base model ``k`` times on random subsamples
  (``frac`` of its rows, each with its own seed) and takes those ``k`` deltas as a stand-in for
  the honest population. Their mean is close to an honest node's update *on this node's data*;
  their spread is the spread due to sampling, which on non-IID venues is much smaller than the
  spread between venues. ALIE's mu - z sigma then sits close to the node's own update (a weak
  attack); IPM's -eps mu is the node's own update reversed and shrunk;
- :class:`SharedFolder`: colluding hostile nodes on one machine (the demo) also write their own
  honest deltas to a shared folder and read each other's, adding the other hostile nodes' data to
  the estimate (still no honest node's update).

docs/robustness.md compares the two with the simulation's true omniscience.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from fedchain.attacks.base import flatten


def subsample_deltas(
    task: Any,
    make_model: Callable[[], Any],
    base: Mapping[str, np.ndarray],
    data: Any,
    *,
    training: Mapping[str, Any],
    seed: int,
    k: int = 4,
    frac: float = 0.5,
) -> np.ndarray:
    """``k`` deltas (flat float64, shape (k, d)) of the base model trained on subsamples of ``data``."""
    from fedchain.codec import load_arrays_into, state_dict_to_arrays
    from fedchain.tasks.base import NodeData, derive_seed

    n = len(data)
    rows = max(1, int(round(frac * n)))
    flat_base = flatten(base)
    out = []
    for j in range(k):
        rng = np.random.default_rng(derive_seed(seed, "subsample", j))
        idx = np.sort(rng.permutation(n)[:rows])
        sub = NodeData(data.x[idx], data.y[idx], {**data.meta, "subsample": j})
        model = make_model()
        load_arrays_into(model, dict(base))
        task.train(model, sub, epochs=int(training.get("epochs", 1)), batch_size=int(training.get("batch_size", 64)),
                   lr=float(training.get("lr", 1e-3)), seed=derive_seed(seed, "subsample-train", j))
        out.append(flatten(state_dict_to_arrays(model)) - flat_base)
    return np.stack(out)


class SharedFolder:
    """Colluding hostile nodes exchange their own honest deltas through a folder they all can write."""

    def __init__(self, folder: str | Path, *, wait_seconds: float = 20.0, poll: float = 0.25) -> None:
        self.folder = Path(folder)
        self.wait_seconds = float(wait_seconds)
        self.poll = float(poll)

    def exchange(self, round_id: int, me: str, own: np.ndarray, expect: int) -> np.ndarray:
        """Write ``own``, wait (bounded) for ``expect`` deltas in all, return every one found, shape (m, d)."""
        d = self.folder / f"round-{int(round_id)}"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{me}.tmp.npy"
        np.save(tmp, np.asarray(own, dtype=np.float64))
        tmp.replace(d / f"{me}.npy")
        deadline = time.monotonic() + self.wait_seconds
        while True:
            files = sorted(d.glob("0x*.npy"))
            if len(files) >= expect or time.monotonic() >= deadline:
                break
            time.sleep(self.poll)
        found = []
        for f in files:
            try:
                v = np.load(f)
            except (OSError, ValueError):
                continue
            if v.shape == np.shape(own):
                found.append(v)
        return np.stack(found) if found else np.asarray(own, dtype=np.float64)[None, :]
