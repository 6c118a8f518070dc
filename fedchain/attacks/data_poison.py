"""Data poisoning: the node trains, honestly, on corrupted training data.

For regression targets (options-iv's implied vols) this is target poisoning in the sense of
Jagielski, Oprea, Biggio, Liu, Nita-Rotaru, Li, "Manipulating Machine Learning: Poisoning Attacks
and Countermeasures for Linear Regression", IEEE S&P 2018 (arXiv:1804.00308): a share ``fraction``
of the node's rows get false targets. ``mode``:

- ``invert`` (default): the smile turned upside down around the node's mean vol,
  ``y' = 2 mean(y) - y``, then moved by ``shift``;
- ``shift``: ``y' = y + shift`` (``shift`` in target units: 0.10 = 10 vol points);
- ``scale``: ``y' = factor * y``.

For classification tasks (integer class targets) the task's own ``poison(data, params, rng)`` is
used when it has one: label flipping, Tolpegin, Varma, Gursoy, Liu, "Data Poisoning Attacks Against
Federated Learning Systems", ESORICS 2020 (arXiv:2007.08432). The update the node then sends is its
honest training result on the poisoned data: no update forging.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fedchain.attacks.base import Attack, Param


class DataPoison(Attack):
    name = "data_poison"
    paper = "Jagielski et al., S&P 2018 (target poisoning); Tolpegin et al., ESORICS 2020 (label flipping)"
    forges_update = False
    PARAMS = {
        "mode": Param("invert", str, choices=("invert", "shift", "scale"), help="how targets are corrupted"),
        "fraction": Param(1.0, float, low=0.0, high=1.0, help="share of the rows poisoned"),
        "shift": Param(0.10, float, help="added to the targets (invert, shift)"),
        "factor": Param(2.0, float, help="targets multiplied by this (scale)"),
    }

    def poison(self, data: Any, task: Any, rng: np.random.Generator) -> Any:
        from fedchain.tasks.base import NodeData

        hook = getattr(task, "poison", None)
        if callable(hook):
            return hook(data, self.params, rng)
        y = data.y.double().clone()
        n = len(y)
        rows = np.sort(rng.permutation(n)[: int(round(self["fraction"] * n))])
        idx = torch.as_tensor(rows, dtype=torch.long)
        if self["mode"] == "invert":
            y[idx] = 2.0 * y.mean() - y[idx] + self["shift"]
        elif self["mode"] == "shift":
            y[idx] = y[idx] + self["shift"]
        else:
            y[idx] = y[idx] * self["factor"]
        return NodeData(data.x, y.float(), {**data.meta, "poisoned": self.name, "poisoned_rows": len(rows)})
