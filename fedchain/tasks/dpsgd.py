"""Record-level DP-SGD on one node: the local training step with differential privacy per record.

DP-SGD (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, "Deep Learning with Differential
Privacy", ACM CCS 2016) clips every record's gradient to L2 norm ``max_grad_norm``, adds Gaussian
noise of standard deviation ``noise_multiplier * max_grad_norm`` to the sum of a Poisson-sampled
batch, and counts the privacy spent with the moments (RDP) accountant. Here it is Opacus'
implementation (Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in
PyTorch", arXiv:2109.12298, 2021): ``PrivacyEngine.make_private`` with Poisson sampling
(``DPDataLoader``: every record joins each batch independently with probability
``1 / ceil(n / batch_size)``), flat per-sample clipping, and the ``RDPAccountant``.

**What is protected.** One record of this node's data (one quote, one trade, one image), under
add/remove-one-record neighbouring: whatever leaves the node after :func:`train_dp_sgd` (the
trained weights, hence the update) is (epsilon, delta)-DP with respect to any single record. It is
not node-level DP (a node's whole data set), which is what secure mode's distributed noise gives
(``fedchain/privacy/accountant.py``); the two compose and can be used together.

**Accounting across rounds.** Each call accounts its own steps in a fresh ``RDPAccountant`` and
returns that call's ``epsilon``. A node that trains on the same records round after round spends
budget every round, so it keeps one ``RDPAccountant`` for its lifetime and passes it as
``accountant=``: the call appends its steps to that accountant's history (RDP composes by adding
curves) and returns ``epsilon_total``, the node's cumulative epsilon over every call made with that
accountant. ``accountant.state_dict()`` / ``load_state_dict()`` (Opacus) carry it across restarts.

**Randomness, and why the seed must be secret.** Poisson sampling and the noise come from two
``torch.Generator`` streams derived from ``seed``, so the same start weights, data and seed give the
same bytes (tests rely on it), and the global RNG is untouched. The guarantee holds only if nobody
else can reproduce the noise: a node must pass a seed known to it alone (e.g.
``secrets.randbits(63)`` each round), never the round config's public seed. Opacus' ``secure_mode``
(a cryptographic RNG and the floating-point-attack mitigation) needs ``torchcsprng``, which is not
installed; with a seeded PRNG the noise is as good as PyTorch's ``torch.normal``.

**Optimizer.** The task's :meth:`~fedchain.tasks.base.Task.make_optimizer` (Adam for the built-in
tasks, fused CPU kernel included) runs on the clipped, noised gradient, with the same linear
learning-rate warm-up as :meth:`~fedchain.tasks.base.Task.train`. Post-processing does not change
epsilon, so Adam is as private as SGD here. ``schedule="cosine"`` and FedProx's ``prox_mu`` are not
offered: the proximal term's gradient is not per record (and it would need its own clipping
argument). The model must be one Opacus has per-sample gradients for (Linear, Conv, LayerNorm,
embeddings, ...; BatchNorm is rejected, since it mixes records); parameter-free layers are fine.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch

from fedchain.errors import ConfigError
from fedchain.tasks.base import NodeData, Progress, Task, derive_seed, torch_threads

if TYPE_CHECKING:  # opacus is imported only when DP-SGD is used (a node without --dp-sgd never needs it)
    from opacus.accountants import RDPAccountant

__all__ = ["new_accountant", "train_dp_sgd"]


def _require_opacus() -> None:
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise ConfigError("DP-SGD needs opacus, which is not installed",
                          hint="pip install --no-deps opacus==1.6.0 (see requirements-nodeps.txt)") from None


def new_accountant() -> RDPAccountant:
    """A fresh Opacus ``RDPAccountant``: keep one per node and pass it to every :func:`train_dp_sgd` call."""
    _require_opacus()
    from opacus.accountants import RDPAccountant

    return RDPAccountant()


def _check(name: str, value: Any, *, positive: bool, upper: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (v <= 0 if positive else v < 0) or (upper is not None and v >= upper):
        bound = f" and below {upper:g}" if upper is not None else ""
        raise ConfigError(f"{name} must be a finite number {'>' if positive else '>='} 0{bound}, got {value!r}")
    return v


def train_dp_sgd(
    task: Task,
    model: torch.nn.Module,
    data: NodeData,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float = 1e-5,
    accountant: RDPAccountant | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``data`` with record-level DP-SGD (Opacus); see the module docstring.

    ``epochs`` * ``ceil(n / batch_size)`` steps, each on a Poisson sample of expected size
    ``batch_size``, with ``task.loss`` (a mean over the batch) and ``task.make_optimizer``. The
    model comes back as the same plain module (no ``GradSampleModule`` wrapper, no hooks, no
    ``grad_sample`` attributes), so ``model.state_dict()`` has the keys it had. ``accountant``: an
    Opacus ``RDPAccountant`` (:func:`new_accountant`) that this call's steps are added to.

    Returns what :meth:`Task.train` returns (``loss``: mean task loss over the records sampled in the
    last epoch, ``steps``, ``samples``, ``epochs``) plus ``epsilon`` (this call's record-level
    epsilon at ``delta``), ``epsilon_total`` (cumulative over ``accountant``'s history including
    this call; equal to ``epsilon`` without one), ``delta``, ``noise_multiplier``,
    ``max_grad_norm`` and ``sample_rate``.
    """
    _require_opacus()
    from opacus import PrivacyEngine
    from opacus.accountants import RDPAccountant
    from torch.utils.data import DataLoader, TensorDataset

    n = len(data)
    if n == 0:
        raise ConfigError("cannot train on an empty data set")
    sigma = _check("noise_multiplier", noise_multiplier, positive=True)
    clip = _check("max_grad_norm", max_grad_norm, positive=True)
    delta = _check("delta", delta, positive=True, upper=1.0)
    if accountant is not None and not isinstance(accountant, RDPAccountant):
        raise ConfigError(f"accountant must be an opacus RDPAccountant, got {type(accountant).__name__}")
    epochs, batch_size = int(epochs), max(1, int(batch_size))
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    keys_before = list(model.state_dict().keys())

    sample_gen = torch.Generator().manual_seed(derive_seed(seed, "dp-sgd", "poisson"))
    noise_gen = torch.Generator().manual_seed(derive_seed(seed, "dp-sgd", "noise"))
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size, generator=sample_gen)
    per_epoch = len(loader)  # ceil(n / batch_size): Opacus' sample rate is 1 / per_epoch
    total = epochs * per_epoch
    opt = task.make_optimizer(model, float(lr))
    warm = max(1.0, float(task.warmup) * total)
    call = RDPAccountant()
    with warnings.catch_warnings():
        # "Secure RNG turned off": the module docstring says why; the remaining Opacus warnings stay.
        warnings.filterwarnings("ignore", message=r"Secure RNG turned off")
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
    engine.accountant = call
    hooks, dp_opt, dp_loader = engine.make_private(
        module=model, optimizer=opt, data_loader=loader, noise_multiplier=sigma, max_grad_norm=clip,
        poisson_sampling=True, noise_generator=noise_gen, loss_reduction="mean", wrap_model=False,
    )
    sample_rate = float(dp_loader.sample_rate)
    step, last = 0, float("nan")
    try:
        model.train()
        with torch_threads(1), warnings.catch_warnings():
            # Opacus' hooks on the first layer, whose input needs no gradient: torch's note is harmless.
            warnings.filterwarnings("ignore", message=r"Full backward hook is firing")
            for _ in range(epochs):
                running, seen = 0.0, 0
                for xb, yb in dp_loader:
                    rate = float(lr) * min(1.0, (step + 1) / warm)
                    for group in dp_opt.param_groups:
                        group["lr"] = rate
                    dp_opt.zero_grad(set_to_none=True)
                    if len(xb):
                        loss = task.loss(model(xb), yb)
                    else:  # a Poisson batch can be empty: the step is noise only (still accounted)
                        loss = model(xb).sum() * 0.0
                    loss.backward()
                    dp_opt.step()
                    running += float(loss.detach()) * len(xb)
                    seen += len(xb)
                    step += 1
                    if progress is not None:
                        progress(step, total)
                last = running / seen if seen else float("nan")
    finally:  # the optimizer's zero_grad resets p.grad_sample, so it goes before the cleanup that deletes it
        dp_opt.zero_grad(set_to_none=True)
        hooks.cleanup()
        for p in model.parameters():  # DPOptimizer's own per-parameter scratch
            if "summed_grad" in p.__dict__:
                del p.summed_grad
        model.eval()
    if list(model.state_dict().keys()) != keys_before:  # pragma: no cover - an Opacus change would show here
        raise RuntimeError("DP-SGD changed the model's state_dict keys")
    accounted = sum(steps for _, _, steps in call.history)
    if accounted != step:  # Opacus steps without per-sample gradients skip the noise and the accountant
        raise ConfigError(f"DP-SGD accounted {accounted} of {step} steps: the model has parameters Opacus "
                          "computes no per-sample gradients for", hint="use layers Opacus supports (no BatchNorm)")
    if accountant is not None:
        for nm, q, steps in call.history:
            for _ in range(steps):
                accountant.step(noise_multiplier=nm, sample_rate=q)
    eps = float(call.get_epsilon(delta)) if call.history else 0.0
    eps_total = float(accountant.get_epsilon(delta)) if accountant is not None and accountant.history else eps
    return {"loss": last, "steps": float(step), "samples": float(n), "epochs": float(epochs),
            "epsilon": eps, "epsilon_total": eps_total, "delta": delta, "noise_multiplier": sigma,
            "max_grad_norm": clip, "sample_rate": sample_rate}
