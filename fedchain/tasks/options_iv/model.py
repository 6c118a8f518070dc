"""The default surface model: a small MLP correcting a parameter-free smile guess."""

from __future__ import annotations

import torch
from torch import nn


class SurfaceMLP(nn.Module):
    """Implied vol from (log-moneyness, expiry in years, 5 market-state indices).

    ``forward`` = :meth:`prior` + 0.1 * MLP(:meth:`inputs`). The inputs are fixed transforms of
    the raw features (standardised moneyness z = k / (atm sqrt(T)), sqrt(T), log T, centred
    state); they have no parameters, so every weight is learned and travels. The output layer
    starts at zero, so a fresh model predicts the prior exactly. Width and depth come from the
    task params (``hidden``, ``depth``).
    """

    n_inputs = 9

    def __init__(self, hidden: int = 64, depth: int = 3) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError("hidden and depth must be positive")
        layers: list[nn.Module] = []
        width = self.n_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        head = nn.Linear(width, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        layers.append(head)
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _z(x: torch.Tensor) -> torch.Tensor:
        k, t, atm = x[..., 0], torch.clamp(x[..., 1], min=1e-4), torch.clamp(x[..., 2], min=1e-3)
        return k / (atm * torch.sqrt(t))

    @staticmethod
    def inputs(x: torch.Tensor) -> torch.Tensor:
        k, t, atm, rv, term, rr, fly = x.unbind(-1)
        t = torch.clamp(t, min=1e-4)
        return torch.stack(
            [
                SurfaceMLP._z(x) / 2.0,
                k,
                2.0 * torch.sqrt(t) - 1.0,
                (torch.log(t) + 3.0) / 2.0,
                (atm - 0.7) * 4.0,
                (rv - 0.7) * 4.0,
                term * 5.0,
                rr * 5.0,
                fly * 10.0,
            ],
            dim=-1,
        )

    @staticmethod
    def prior(x: torch.Tensor) -> torch.Tensor:
        """The first guess: the 30-day ATM index with the 30-day risk reversal (per unit of z) and
        butterfly (per z^2) spread over standardised moneyness z, at every tenor."""
        atm, rr, fly = x[..., 2], x[..., 5], x[..., 6]
        z = torch.clamp(SurfaceMLP._z(x), -3.0, 3.0)
        return (atm + 0.5 * rr * z + fly * z * z).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prior(x) + 0.1 * self.net(self.inputs(x))
