"""``digits``: classify 8x8 handwritten digits, with each node holding a label-skewed share.

The data are scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits"
test set (``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels with values 0-16, 10
classes); nothing is downloaded. A seeded, stratified 20% is the global held-out set; the rest is
split across the nodes **non-IID by label** with the usual Dirichlet scheme (Hsu, Qi, Brown,
"Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification",
2019, arXiv:1909.06335): for each class, the shares of the nodes are drawn from Dir(alpha), so a
small ``alpha`` gives each node a few dominant labels (``alpha`` 0.5 by default; large alpha tends
to IID). The model is a small MLP (64 -> hidden -> hidden -> 10, SiLU). Metrics: ``accuracy``,
``error`` (1 - accuracy, the primary metric, lower is better) and ``loss`` (mean cross-entropy).
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fedchain.errors import ConfigError
from fedchain.tasks.base import NodeData, Task, check_shard, positive_int_param, derive_seed, seeded_module

N_CLASSES = 10
N_FEATURES = 64
HOLDOUT_SHARE = 0.2
#: A node is given at least this many training rows (the Dirichlet draw is repeated until it is).
MIN_ROWS = 8


class DigitsMLP(nn.Module):
    """Pixels (0-16) scaled to [0, 1], two hidden layers, 10 logits."""

    def __init__(self, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError("hidden and depth must be positive")
        layers: list[nn.Module] = []
        width = N_FEATURES
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, N_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 16.0)


class DigitsTask(Task):
    """8x8 digit images, 10 classes, label-skewed nodes."""

    name: ClassVar[str] = "digits"
    primary_metric: ClassVar[str] = "error"
    warmup: ClassVar[float] = 0.1

    def default_params(self) -> dict:
        return {"hidden": 64, "depth": 2, "alpha": 0.5}

    def default_training(self) -> dict:
        return {"epochs": 1, "batch_size": 32, "lr": 0.003}

    # --- model -----------------------------------------------------------------------------------
    def build_model(self, params: dict, seed: int) -> torch.nn.Module:
        p = self.resolve_params(params)
        hidden, depth = _positive_int(p, "hidden"), _positive_int(p, "depth")
        return seeded_module(lambda: DigitsMLP(hidden, depth), seed)

    # --- data ------------------------------------------------------------------------------------
    def node_data(self, shard: int, num_shards: int, seed: int, params: dict) -> NodeData:
        shard, num_shards = check_shard(shard, num_shards)
        p = self.resolve_params(params)
        alpha = _alpha(p)
        parts = _partition(int(seed), num_shards, alpha)
        x, y = _arrays()
        rows = parts[shard]
        counts = np.bincount(y[rows], minlength=N_CLASSES)
        meta = {"shard": shard, "num_shards": num_shards, "venue": f"node {shard}", "rows": int(len(rows)),
                "seed": int(seed), "alpha": alpha, "label_counts": [int(c) for c in counts]}
        return NodeData(torch.tensor(x[rows]), torch.tensor(y[rows].astype(np.float32)).reshape(-1, 1), meta)

    def validation_data(self, seed: int = 0, params: dict | None = None) -> NodeData:
        """The global held-out set: a seeded, stratified 20% of the images."""
        x, y = _arrays()
        rows = _holdout(int(seed))
        return NodeData(torch.tensor(x[rows]), torch.tensor(y[rows].astype(np.float32)).reshape(-1, 1),
                        {"split": "val", "seed": int(seed), "rows": int(len(rows))})

    def poison(self, data: NodeData, params: dict, rng: np.random.Generator) -> NodeData:
        """Label flipping (the ``data_poison`` attack): a ``fraction`` of rows get label 9 - y."""
        frac = float(params.get("fraction", 1.0))
        y = data.y.clone()
        n = len(y)
        rows = torch.as_tensor(np.sort(rng.permutation(n)[: int(round(frac * n))]), dtype=torch.long)
        y[rows] = (N_CLASSES - 1) - y[rows]
        return NodeData(data.x, y, {**data.meta, "poisoned": "label_flip", "poisoned_rows": int(len(rows))})

    # --- training and evaluation -----------------------------------------------------------------
    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(pred, y.reshape(-1).long())

    def evaluate(self, model: torch.nn.Module, data: NodeData | None = None, *, seed: int = 0,
                 params: dict | None = None) -> dict[str, float]:
        """accuracy, error (1 - accuracy) and mean cross-entropy ``loss``; ``data=None``: held-out set."""
        if data is None:
            data = self.validation_data(seed, params)
        if len(data) == 0:
            return {"accuracy": float("nan"), "error": float("nan"), "loss": float("nan")}
        logits = self.predict(model, data.x)
        target = data.y.reshape(-1).long()
        acc = float((logits.argmax(dim=1) == target).double().mean())
        loss = float(nn.functional.cross_entropy(logits.double(), target))
        return {"accuracy": acc, "error": 1.0 - acc, "loss": loss}


# --- data helpers ---------------------------------------------------------------------------------
def _positive_int(p: dict, key: str) -> int:
    return positive_int_param(p, key, "digits")


def _alpha(p: dict) -> float:
    v = p.get("alpha")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
        raise ConfigError(f"digits parameter 'alpha' must be a positive number, got {v!r}",
                          hint="the Dirichlet concentration: 0.1 very skewed, 100 about IID")
    return float(v)


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is in requirements.txt
        raise ConfigError("the digits task needs scikit-learn", hint="pip install scikit-learn (requirements.txt)") from None
    d = load_digits()
    x = np.ascontiguousarray(d.data, dtype=np.float32)
    y = np.asarray(d.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@lru_cache(maxsize=16)
def _split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): a stratified HOLDOUT_SHARE of each class is held out."""
    _, y = _arrays()
    rng = np.random.default_rng(derive_seed(seed, "digits", "holdout"))
    train, held = [], []
    for c in range(N_CLASSES):
        rows = np.flatnonzero(y == c)
        rows = rows[rng.permutation(len(rows))]
        k = int(round(HOLDOUT_SHARE * len(rows)))
        held.append(rows[:k])
        train.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _holdout(seed: int) -> np.ndarray:
    return _split(seed)[1]


@lru_cache(maxsize=64)
def _partition(seed: int, num_shards: int, alpha: float) -> tuple[np.ndarray, ...]:
    """Each node's training rows: per class, Dirichlet(alpha) shares over the nodes."""
    _, y = _arrays()
    train = _split(seed)[0]
    if num_shards * MIN_ROWS > len(train):
        raise ConfigError(f"digits has {len(train)} training images: too few for {num_shards} nodes",
                          hint=f"use at most {len(train) // MIN_ROWS} nodes")
    rng = np.random.default_rng(derive_seed(seed, "digits", "dirichlet", num_shards, repr(alpha)))
    for _attempt in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_shards)]
        for c in range(N_CLASSES):
            rows = train[y[train] == c]
            rows = rows[rng.permutation(len(rows))]
            shares = rng.dirichlet(np.full(num_shards, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for i, chunk in enumerate(np.split(rows, cuts)):
                parts[i].append(chunk)
        out = tuple(np.sort(np.concatenate(p)) for p in parts)
        if min(len(p) for p in out) >= MIN_ROWS:
            for p in out:
                p.setflags(write=False)
            return out
    raise ConfigError(f"could not split digits over {num_shards} nodes with alpha={alpha} "  # pragma: no cover
                      f"giving each at least {MIN_ROWS} images", hint="raise alpha or use fewer nodes")
