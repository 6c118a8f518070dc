"""The masked update blob: what a secure-mode node uploads and commits.

A canonical integer safetensors file (:func:`fedchain.codec.encode_int_tensors`):

- one tensor per model tensor, same names and shapes, dtype ``"U32"`` (or ``"U64"``, the round's
  modulus): the masked input y_u (:mod:`.masking`);
- ``"secagg:shares"``, dtype ``"U8"``, shape (n, n, 82): the node's share bundle (:mod:`.shares`),
  n = the size of the selected set;
- ``__metadata__``: exactly the sender's :class:`fedchain.codec.UpdateIdentity` (chain id,
  contract, node, round), as for plaintext update blobs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fedchain.codec import FixedPointConfig, UpdateIdentity, decode_int_tensors, encode_int_tensors
from fedchain.errors import InvalidBlob
from fedchain.secure.shares import CT_BYTES, SHARES_TENSOR

__all__ = ["SHARES_TENSOR", "decode_masked_update", "encode_masked_update"]

_IDENTITY_KEYS = {"chain_id", "contract", "node", "round"}


def encode_masked_update(
    masked: Mapping[str, np.ndarray], bundle: np.ndarray, config: FixedPointConfig, identity: UpdateIdentity
) -> bytes:
    if SHARES_TENSOR in masked:
        raise InvalidBlob(f"a model tensor may not be named {SHARES_TENSOR!r}", reason="wrong_names")
    for name, value in masked.items():
        if np.asarray(value).dtype != config.dtype:
            raise InvalidBlob(f"tensor {name!r} is {np.asarray(value).dtype}, not {config.dtype}", reason="wrong_dtype")
    b = np.asarray(bundle)
    if b.dtype != np.uint8 or b.ndim != 3 or b.shape[0] != b.shape[1] or b.shape[2] != CT_BYTES:
        raise InvalidBlob("a share bundle is a uint8 array of shape (n, n, 82)", reason="malformed")
    return encode_int_tensors({**masked, SHARES_TENSOR: b}, metadata=identity.metadata())


def decode_masked_update(
    data: bytes | bytearray | memoryview,
    *,
    config: FixedPointConfig,
    identity: UpdateIdentity,
    expected: Mapping[str, tuple[int, ...]],
    n_selected: int,
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(masked residues by name, share bundle) of a masked update blob, fully checked.

    Raises InvalidBlob: ``malformed`` / ``too_large`` / ``wrong_dtype`` / ``wrong_names`` /
    ``wrong_shape`` as the codec, ``not_own_update`` for another sender or round, ``bad_shares``
    for a missing share tensor or one whose shape is not (n_selected, n_selected, 82)."""
    if SHARES_TENSOR in expected:
        raise InvalidBlob(f"a model tensor may not be named {SHARES_TENSOR!r}", reason="wrong_names")
    arrays, meta = decode_int_tensors(
        data,
        dtypes={"*": config.dtype_name, SHARES_TENSOR: "U8"},
        expected=expected,
        extras=(SHARES_TENSOR,),
        max_bytes=max_bytes,
    )
    if meta is None or set(meta) != _IDENTITY_KEYS:
        raise InvalidBlob("masked update blob does not name its sender", reason="malformed")
    want = identity.metadata()
    if meta != want:
        diff = ", ".join(f"{k} {meta[k]!r} (expected {want[k]!r})" for k in sorted(want) if meta[k] != want[k])
        raise InvalidBlob(f"masked update blob was made for another sender or round: {diff}", reason="not_own_update")
    bundle = arrays.pop(SHARES_TENSOR, None)
    if bundle is None or bundle.shape != (n_selected, n_selected, CT_BYTES):
        got = None if bundle is None else tuple(bundle.shape)
        raise InvalidBlob(
            f"masked update blob has share tensor of shape {got}, expected {(n_selected, n_selected, CT_BYTES)}", reason="bad_shares"
        )
    return arrays, bundle
