"""The task interface: what a federation learns, and how one node trains and evaluates.

A task supplies a model factory, each node's private data (generated for shard ``i`` of ``N`` from a
seed, or read from a CSV/Parquet file), a local training step and an evaluation. Nodes and the
aggregator load a task by name (``options-iv``) or by ``package.module:attribute``; see
``docs/tasks.md``. Only ``build_model``, ``node_data`` and ``evaluate`` are abstract: :meth:`Task.train`
is a generic, deterministic minibatch loop (Adam by default, mean squared error by default).
"""

from __future__ import annotations

import csv
import hashlib
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fedchain.errors import ConfigError

Progress = Callable[[int, int], None]


@dataclass
class NodeData:
    """A node's private data (it never leaves the node): float32 features ``x``, targets ``y``."""

    x: torch.Tensor
    y: torch.Tensor
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x = torch.as_tensor(self.x, dtype=torch.float32)
        self.y = torch.as_tensor(self.y, dtype=torch.float32)
        if self.x.shape[0] != self.y.shape[0]:
            raise ConfigError(f"features have {self.x.shape[0]} rows but targets have {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across processes and platforms).

    Use it to give every (seed, round, shard) its own stream: ``derive_seed(seed, "train", round, shard)``.
    """
    h = hashlib.sha256()
    for p in parts:
        b = str(p).encode()
        h.update(struct.pack("<I", len(b)) + b)
    return int.from_bytes(h.digest()[:8], "little") >> 1


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (many node processes share few cores), then restore."""
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def seeded_module(factory: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """Build a module with torch's default initialisers seeded by ``seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
        return factory()


def regression_metrics(pred: torch.Tensor, y: torch.Tensor, *, scale: float = 1.0) -> dict[str, float]:
    """``rmse``, ``mae``, ``max_abs_err`` of ``pred`` against ``y``, multiplied by ``scale``."""
    err = (pred.reshape(y.shape).double() - y.double()) * scale
    if err.numel() == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "max_abs_err": float("nan")}
    return {
        "rmse": float(err.pow(2).mean().sqrt()),
        "mae": float(err.abs().mean()),
        "max_abs_err": float(err.abs().max()),
    }


class Task(ABC):
    """A learning task. Subclass it, set ``name``, implement the three abstract methods."""

    #: Registry name, e.g. ``"options-iv"``; user tasks default to the class name.
    name: ClassVar[str]
    #: The metric the demo table shows; lower is better.
    primary_metric: ClassVar[str] = "rmse"
    #: Share of each :meth:`train` call spent warming the learning rate up linearly to
    #: lr. A fresh optimiser every round makes Adam's first steps full-size; the warm-up keeps them
    #: from throwing away what the global model knows (0 turns it off).
    warmup: ClassVar[float] = 0.1
    #: Columns :meth:`load_data_file` reads by default (features, then targets).
    feature_columns: ClassVar[tuple[str, ...]] = ()
    target_columns: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ and not getattr(cls, "name", None):
            cls.name = cls.__name__

    # --- configuration ---------------------------------------------------------------------------
    def default_params(self) -> dict:
        """JSON-able task parameters (model size, data sizes...). They go into the round config."""
        return {}

    def default_training(self) -> dict:
        """Local training settings for one round: ``epochs``, ``batch_size``, ``lr``."""
        return {"epochs": 1, "batch_size": 64, "lr": 1e-3}

    def resolve_params(self, params: dict | None) -> dict:
        """``default_params()`` overlaid with ``params`` (unknown keys are kept)."""
        merged = dict(self.default_params())
        merged.update(params or {})
        return merged

    # --- the three things a task must provide ----------------------------------------------------
    @abstractmethod
    def build_model(self, params: dict, seed: int) -> torch.nn.Module:
        """A fresh model; the same ``seed`` must give the same initial weights."""

    @abstractmethod
    def node_data(self, shard: int, num_shards: int, seed: int, params: dict) -> NodeData:
        """Shard ``shard`` (0-based) of ``num_shards``, deterministic for ``seed``."""

    @abstractmethod
    def evaluate(
        self, model: torch.nn.Module, data: NodeData | None = None, *, seed: int = 0, params: dict | None = None
    ) -> dict[str, float]:
        """Metrics (include :attr:`primary_metric`); ``data=None`` means the global held-out set."""

    # --- data files --------------------------------------------------------------------------------
    def load_data_file(self, path: str | Path, params: dict) -> NodeData:
        """Read a node's data from CSV (or Parquet, with pyarrow) using the task's column names."""
        if not self.feature_columns or not self.target_columns:
            raise ConfigError(
                f"task {self.name!r} cannot read data files",
                hint="set feature_columns and target_columns on the task class, or override load_data_file",
            )
        table = read_table(path, list(self.feature_columns) + list(self.target_columns))
        x = np.stack([table[c] for c in self.feature_columns], axis=1)
        y = np.stack([table[c] for c in self.target_columns], axis=1)
        return NodeData(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)),
                        {"source": str(path), "rows": int(x.shape[0])})

    # --- training ----------------------------------------------------------------------------------
    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss; mean squared error unless overridden."""
        return torch.nn.functional.mse_loss(pred.reshape(y.shape), y)

    def make_optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        """Adam unless overridden (SGD: ``torch.optim.SGD(model.parameters(), lr=lr)``)."""
        try:  # the fused CPU kernel is deterministic and ~25% faster on small models
            return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - older torch / odd params
            return torch.optim.Adam(model.parameters(), lr=lr)

    def train(
        self,
        model: torch.nn.Module,
        data: NodeData,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        seed: int,
        progress: Progress | None = None,
        schedule: str = "constant",
        prox_mu: float = 0.0,
    ) -> dict[str, float]:
        """Minibatch training in place; the same seed, data and start weights give the same bytes.

        Shuffling uses its own ``torch.Generator`` (the global RNG is not touched), the loop runs on
        one thread, and no non-deterministic kernels are involved (CPU, dense layers). The learning
        rate warms up linearly over the first :attr:`warmup` share of the steps, then stays at
        ``lr`` (``schedule="cosine"`` decays it to zero instead: used by the baseline's tuned
        centralised reference, not by federated rounds). ``prox_mu`` > 0 adds FedProx's proximal
        term ``(mu/2) * ||w - w_start||^2`` (Li et al., MLSys 2020, Algorithm 2) to every step's
        loss, with ``w_start`` the weights the call starts from (the round's global model); nodes
        take mu from the round config's ``strategy.params.mu``. Returns ``loss`` (the task loss
        without the proximal term, mean over the last epoch), ``steps``, ``samples``, ``epochs``.
        """
        n = len(data)
        if n == 0:
            raise ConfigError("cannot train on an empty data set")
        if schedule not in ("constant", "cosine"):
            raise ConfigError(f"unknown learning-rate schedule {schedule!r}", hint="use 'constant' or 'cosine'")
        mu = float(prox_mu)
        if not math.isfinite(mu) or mu < 0:
            raise ConfigError(f"prox_mu must be a finite number >= 0, got {prox_mu!r}")
        anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else None
        epochs, batch_size = int(epochs), max(1, int(batch_size))
        per_epoch = math.ceil(n / batch_size)
        total = epochs * per_epoch
        gen = torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
        opt = self.make_optimizer(model, float(lr))
        warm = max(1.0, float(self.warmup) * total)
        model.train()
        step, last = 0, float("nan")
        with torch_threads(1):
            for _ in range(epochs):
                order = torch.randperm(n, generator=gen)
                running = 0.0
                for b in range(per_epoch):
                    idx = order[b * batch_size : (b + 1) * batch_size]
                    rate = float(lr) * min(1.0, (step + 1) / warm)
                    if schedule == "cosine":
                        rate *= 0.5 * (1.0 + math.cos(math.pi * step / total))
                    for group in opt.param_groups:
                        group["lr"] = rate
                    opt.zero_grad(set_to_none=True)
                    loss = self.loss(model(data.x[idx]), data.y[idx])
                    total_loss = loss
                    if anchor is not None:
                        prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
                        total_loss = loss + (0.5 * mu) * prox
                    total_loss.backward()
                    opt.step()
                    running += float(loss.detach()) * len(idx)
                    step += 1
                    if progress is not None:
                        progress(step, total)
                last = running / n
        model.eval()
        return {"loss": last, "steps": float(step), "samples": float(n), "epochs": float(epochs)}

    def predict(self, model: torch.nn.Module, x: torch.Tensor, *, batch: int = 65536) -> torch.Tensor:
        """Model outputs without gradients, in eval mode, on one thread."""
        model.eval()
        with torch.no_grad(), torch_threads(1):
            if len(x) <= batch:
                return model(x)
            return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])

    def __repr__(self) -> str:
        return f"<task {self.name}>"


# --- tables ---------------------------------------------------------------------------------------
def read_table(path: str | Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of a CSV (header row) or Parquet file as float64 arrays; ConfigError on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data file {str(p)!r} does not exist", hint="pass the path of a CSV or Parquet file")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(
                f"reading {p.name} needs pyarrow, which is not installed",
                hint="pip install pyarrow, or convert the file to CSV",
            ) from None
        try:
            tbl = pq.read_table(p)
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad file
            raise ConfigError(f"cannot read Parquet file {str(p)!r}: {exc}") from None
        missing = [c for c in columns if c not in tbl.column_names]
        if missing:
            raise ConfigError(f"{p.name} lacks column(s) {', '.join(missing)}",
                              hint=f"expected columns: {', '.join(columns)}")
        out = {}
        for c in columns:
            try:
                out[c] = np.asarray(tbl.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{p.name}: column {c!r} is not numeric ({exc})") from None
        return _finite(out, p)
    if suffix not in (".csv", ".txt", ".tsv"):
        raise ConfigError(f"unsupported data file type {suffix or '(none)'!r} for {p.name}",
                          hint="use a .csv file with a header row, or .parquet with pyarrow installed")
    with p.open(newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delimiter = "\t" if suffix == ".tsv" or ("\t" in sample and "," not in sample) else ","
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConfigError(f"{p.name} is empty") from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"{p.name} lacks column(s) {', '.join(missing)}",
                              hint=f"expected a header row with: {', '.join(columns)}")
        idx = [header.index(c) for c in columns]
        rows: list[list[float]] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                rows.append([float(row[i]) for i in idx])
            except (ValueError, IndexError):
                raise ConfigError(f"{p.name} line {line_no}: expected numbers in columns {', '.join(columns)}") from None
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, len(columns))
    return _finite({c: arr[:, j] for j, c in enumerate(columns)}, p)


def _finite(cols: dict[str, np.ndarray], p: Path) -> dict[str, np.ndarray]:
    for c, v in cols.items():
        if not np.all(np.isfinite(v)):
            raise ConfigError(f"{p.name}: column {c!r} has missing or non-finite values")
    return cols


def write_csv(path: str | Path, columns: dict[str, np.ndarray | torch.Tensor]) -> Path:
    """Write equal-length columns to a CSV with a header row (full float precision)."""
    p = Path(path)
    names = list(columns)
    data = [np.asarray(columns[c], dtype=np.float64).reshape(-1) for c in names]
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*data):
            w.writerow([repr(float(v)) for v in row])
    return p


def check_shard(shard: Any, num_shards: Any) -> tuple[int, int]:
    """``(shard, num_shards)`` as ints, or ConfigError: shards are numbered 0..N-1 for N >= 1."""
    import operator

    try:
        shard, num_shards = operator.index(shard), operator.index(num_shards)
    except TypeError:
        raise ConfigError(f"shard and number of shards must be integers, got {shard!r} of {num_shards!r}") from None
    if not (num_shards >= 1 and 0 <= shard < num_shards):
        raise ConfigError(f"shard {shard} of {num_shards} is out of range",
                          hint="shards are numbered 0..N-1 for N >= 1 nodes")
    return shard, num_shards


def positive_int_param(params: dict, key: str, task: str) -> int:
    """``params[key]`` as a positive int (an integral float is accepted), or ConfigError naming the task."""
    v = params.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or int(v) < 1:
        raise ConfigError(f"{task} parameter {key!r} must be a positive integer, got {v!r}")
    return int(v)
