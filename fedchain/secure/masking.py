"""Double masking (Bonawitz et al., CCS 2017, Sec. 4): a node's masked input and removing the
masks from a sum, all modulo 2^M.

With the selected set S ordered by address, node u with fixed-point input x_u (residues), self-mask
seed b_u and pair seeds s_uv (:mod:`.keys`) uploads::

    y_u = x_u + PRG(b_u) + sum_{v in S, v > u} PRG(s_uv) - sum_{v in S, v < u} PRG(s_uv)   (mod 2^M)

PRG = :func:`.prg.expand` over all coordinates, tensors in name order, one stream per seed. For the
committed set C (on-chain) and the dropped D = S \\ C, the pair masks between two members of C
cancel in sum_{u in C} y_u, which leaves::

    sum_{u in C} y_u = sum x_u + sum_{u in C} PRG(b_u) + sum_{u in C, d in D} sign(u, d) PRG(s_ud)

with sign(u, d) = +1 if u < d else -1. :func:`unmask_sum` subtracts those, given b_u for u in C and
s_ud for u in C, d in D (recovered from the survivors' shares, :mod:`.unmasking`).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from fedchain.codec import FixedPointConfig
from fedchain.secure import SecAggError
from fedchain.secure.keys import address_bytes
from fedchain.secure.prg import expand

__all__ = ["mask_input", "mask_vector", "unmask_sum"]


def _flatten(residues: Mapping[str, np.ndarray], config: FixedPointConfig) -> tuple[list[str], list[tuple[int, ...]], np.ndarray]:
    names = sorted(residues)
    shapes = [tuple(int(d) for d in np.shape(residues[n])) for n in names]
    for n in names:
        if np.asarray(residues[n]).dtype != config.dtype:
            raise SecAggError(f"tensor {n!r} is {np.asarray(residues[n]).dtype}, not {config.dtype}", reason="wrong_dtype")
    flat = np.concatenate([np.asarray(residues[n]).reshape(-1) for n in names]) if names else np.zeros(0, config.dtype)
    return names, shapes, flat.astype(config.dtype, copy=True)


def _unflatten(names, shapes, flat) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for name, shape in zip(names, shapes):
        size = math.prod(shape)
        out[name] = flat[start : start + size].reshape(shape).copy()
        start += size
    return out


def mask_vector(size: int, me: str, self_seed: bytes, pair_seeds: Mapping[str, bytes], config: FixedPointConfig) -> np.ndarray:
    """The total mask of node ``me``: PRG(b) + sum_{v > me} PRG(s) - sum_{v < me} PRG(s)."""
    mine = address_bytes(me)
    total = expand(self_seed, size, config.modulus_bits)
    for peer in sorted(pair_seeds, key=address_bytes):
        other = address_bytes(peer)
        if other == mine:
            raise SecAggError("a node has no pair mask with itself", reason="malformed")
        stream = expand(pair_seeds[peer], size, config.modulus_bits)
        if other > mine:
            total += stream
        else:
            total -= stream
    return total


def mask_input(
    residues: Mapping[str, np.ndarray],
    *,
    me: str,
    self_seed: bytes,
    pair_seeds: Mapping[str, bytes],
    config: FixedPointConfig,
) -> dict[str, np.ndarray]:
    """y = x + mask (see module docstring). ``pair_seeds``: peer address -> s_{me,peer}, one for
    every other node of the selected set."""
    names, shapes, flat = _flatten(residues, config)
    flat += mask_vector(flat.size, me, self_seed, pair_seeds, config)
    return _unflatten(names, shapes, flat)


def unmask_sum(
    masked_sum: Mapping[str, np.ndarray],
    *,
    self_seeds: Mapping[str, bytes],
    pair_seeds: Mapping[tuple[str, str], bytes],
    config: FixedPointConfig,
) -> dict[str, np.ndarray]:
    """The plaintext sum: ``masked_sum`` (sum of the committed nodes' y) minus PRG(b_u) for every
    u in ``self_seeds`` (the committed nodes) and sign(u, d) PRG(s_ud) for every (u, d) in
    ``pair_seeds`` (u committed, d dropped). Exact, in integers modulo 2^M."""
    names, shapes, flat = _flatten(masked_sum, config)
    for owner in sorted(self_seeds, key=address_bytes):
        flat -= expand(self_seeds[owner], flat.size, config.modulus_bits)
    for (u, d) in sorted(pair_seeds, key=lambda k: (address_bytes(k[0]), address_bytes(k[1]))):
        stream = expand(pair_seeds[(u, d)], flat.size, config.modulus_bits)
        if address_bytes(u) < address_bytes(d):
            flat -= stream
        else:
            flat += stream
    return _unflatten(names, shapes, flat)


