"""Canonical serialisation: tensors as safetensors bytes, documents as JSON bytes.

The same weights always give the same bytes on every machine, which is what lets anyone recompute
a round's model hash. docs/protocol.md ("Canonical codec") is the normative description.

Tensor files are safetensors files written by this module (not by the safetensors library, whose
exact output we do not control): float32 little-endian only, tensors laid out in name order, a
sorted compact JSON header, padded with spaces to a multiple of 8 bytes. Models have no
``__metadata__``. Update blobs (protocol v2) have exactly the metadata of :class:`UpdateIdentity`
(chain id, contract, round, node), so a blob names its sender and a copied commitment is detectably
someone else's (:func:`decode_update`).
:func:`decode_tensors` accepts exactly that form and nothing else: it never unpickles, parses the
header itself under a size limit and checks every offset before touching the data.

torch is imported lazily (only by :func:`state_dict_to_arrays` and :func:`load_arrays_into`), so
verification works without it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from fedchain.errors import InvalidBlob

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ALIGN",
    "UpdateIdentity",
    "decode_update",
    "encode_update",
    "DTYPE",
    "DTYPE_NAME",
    "MAX_HEADER_BYTES",
    "decode_json",
    "decode_tensors",
    "encode_json",
    "encode_tensors",
    "load_arrays_into",
    "state_dict_to_arrays",
    "tensor_spec",
]

#: The one tensor dtype on the wire: IEEE 754 binary32, little-endian (safetensors "F32").
DTYPE = np.float32
DTYPE_NAME = "F32"
_WIRE = np.dtype("<f4")
#: The JSON header is padded with spaces so the data section starts on this boundary.
ALIGN = 8
#: Largest header :func:`decode_tensors` reads (and :func:`encode_tensors` writes).
MAX_HEADER_BYTES = 1 << 20
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_LIST_MAX = 5  # names shown in a message before "..."


# --- names ---------------------------------------------------------------------------------------
def _check_name(name: object) -> str:
    """Tensor names are non-empty printable ASCII without ``"`` or ``\\`` (so JSON never escapes)."""
    if not isinstance(name, str):
        raise InvalidBlob(f"tensor name {name!r} is a {type(name).__name__}, not a string")
    if not name:
        raise InvalidBlob("empty tensor name")
    for ch in name:
        if not (" " <= ch <= "~") or ch in '"\\':
            raise InvalidBlob(
                f"tensor name {name!r} has the character {ch!r}; names are printable ASCII "
                'without " or \\'
            )
    return name


def _show(names: Iterable[str]) -> str:
    items = sorted(names)
    shown = ", ".join(repr(n) for n in items[:_LIST_MAX])
    return "[" + shown + (f", ... {len(items) - _LIST_MAX} more" if len(items) > _LIST_MAX else "") + "]"


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# --- header ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateIdentity:
    """Who an update blob is from and for: written into its ``__metadata__`` by the node, checked
    by the aggregator and by ``verify`` against the on-chain commitment's sender."""

    chain_id: int
    contract: str
    round: int
    node: str

    def metadata(self) -> dict[str, str]:
        from eth_utils import to_checksum_address

        return {
            "chain_id": str(int(self.chain_id)),
            "contract": to_checksum_address(self.contract),
            "node": to_checksum_address(self.node),
            "round": str(int(self.round)),
        }


_IDENTITY_KEYS = frozenset({"chain_id", "contract", "node", "round"})


def _header(spec: list[tuple[str, tuple[int, ...]]], metadata: Mapping[str, str] | None = None) -> tuple[bytes, int]:
    """Canonical header bytes (padded) and data length for ``spec`` sorted by name."""
    entries: dict[str, Any] = {}
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, shape in spec:
        end = offset + math.prod(shape) * 4
        entries[name] = {"data_offsets": [offset, end], "dtype": DTYPE_NAME, "shape": list(shape)}
        offset = end
    raw = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return raw + b" " * (-len(raw) % ALIGN), offset


def tensor_spec(tensors: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape (a tuple of ints), for arrays or torch tensors."""
    return {name: tuple(int(d) for d in value.shape) for name, value in tensors.items()}


# --- tensors -----------------------------------------------------------------------------------
def encode_update(tensors: Mapping[str, Any], identity: UpdateIdentity) -> bytes:
    """Canonical bytes of an update blob: :func:`encode_tensors` plus the sender's identity."""
    return encode_tensors(tensors, metadata=identity.metadata())


def encode_tensors(tensors: Mapping[str, Any], *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Canonical safetensors bytes of ``tensors`` (values cast to float32, C order).

    Raises InvalidBlob: ``non_finite`` for NaN/inf (after the cast: float64 values beyond the
    float32 range are rejected too), ``wrong_dtype`` for non-numeric arrays, ``malformed`` for
    bad names, ``too_large`` if the header would exceed MAX_HEADER_BYTES.
    """
    arrays: list[tuple[str, np.ndarray]] = []
    for name in sorted(tensors, key=lambda n: (not isinstance(n, str), str(n))):
        _check_name(name)
        value = np.asarray(tensors[name])
        if value.dtype.kind not in "biuf":
            raise InvalidBlob(
                f"tensor {name!r} has dtype {value.dtype}; only real numbers can be encoded",
                reason="wrong_dtype",
            )
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is rejected just below
            arr = np.asarray(value, dtype=_WIRE, order="C")
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise InvalidBlob(
                f"tensor {name!r} has {bad} non-finite value(s) (NaN or inf) as float32",
                reason="non_finite",
            )
        arrays.append((name, arr))
    for key, value in (metadata or {}).items():
        _check_name(key)
        _check_name(value)
    header, _ = _header([(name, arr.shape) for name, arr in arrays], metadata)
    if len(header) > MAX_HEADER_BYTES:
        raise InvalidBlob(
            f"header would be {len(header)} bytes, more than the {MAX_HEADER_BYTES}-byte limit "
            f"({len(arrays)} tensors)",
            reason="too_large",
        )
    parts: list[Any] = [len(header).to_bytes(8, "little"), header]
    parts.extend(arr.reshape(-1).view(np.uint8).data for _, arr in arrays if arr.size)
    return b"".join(parts)


def _malformed(message: str) -> InvalidBlob:
    return InvalidBlob(message, reason="malformed")


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def decode_update(
    data: bytes | bytearray | memoryview,
    *,
    identity: UpdateIdentity,
    max_bytes: int | None = None,
    expected: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, np.ndarray]:
    """Like :func:`decode_tensors` for an update blob, which must name ``identity`` as its sender.

    Raises InvalidBlob ``malformed`` when the blob names no sender (or has other metadata), and
    ``not_own_update`` when it names another sender, chain, contract or round: a commitment to a
    blob that another node made.
    """
    arrays, meta = _decode(data, max_bytes=max_bytes, expected=expected)
    if meta is None or set(meta) != _IDENTITY_KEYS:
        raise _malformed(
            "update blob does not name its sender: __metadata__ must hold exactly chain_id, contract, node, round"
        )
    want = identity.metadata()
    if meta != want:
        diff = ", ".join(f"{k} {meta[k]!r} (expected {want[k]!r})" for k in sorted(want) if meta[k] != want[k])
        raise InvalidBlob(f"update blob was made for another sender or round: {diff}", reason="not_own_update")
    return arrays


def decode_tensors(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int | None = None,
    expected: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, np.ndarray]:
    """Parse and validate a canonical tensor file without metadata (a model); returns writable
    float32 copies by name.

    Raises InvalidBlob with ``reason``: ``too_large`` (over ``max_bytes``), ``malformed``
    (truncated, garbage, bad header or offsets, not canonical, has ``__metadata__``), ``wrong_dtype``
    (not F32), ``wrong_names`` / ``wrong_shape`` (differs from ``expected``), ``non_finite`` (NaN/inf).
    """
    arrays, meta = _decode(data, max_bytes=max_bytes, expected=expected)
    if meta is not None:
        raise _malformed("tensor file header has __metadata__; canonical model files have none")
    return arrays


def _decode(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int | None,
    expected: Mapping[str, tuple[int, ...]] | None,
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """The arrays and the ``__metadata__`` (None if absent) of a canonical tensor file."""
    view = memoryview(data).cast("B")
    total = view.nbytes
    if max_bytes is not None and total > max_bytes:
        raise InvalidBlob(f"tensor file is {total} bytes, more than the limit of {max_bytes}", reason="too_large")
    if total < 8:
        raise _malformed(f"truncated tensor file: {total} bytes, less than the 8-byte header length")
    n = int.from_bytes(view[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise _malformed(f"header length field says {n} bytes, more than the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > total:
        raise _malformed(f"truncated tensor file: header length is {n} but only {total - 8} bytes follow")
    header = bytes(view[8 : 8 + n])
    try:
        text = header.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"tensor file header is not valid JSON ({_short(exc)})") from None
    if not isinstance(obj, dict):
        raise _malformed(f"tensor file header is a JSON {type(obj).__name__}, not an object")
    meta = obj.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not meta or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise _malformed("tensor file __metadata__ must be a non-empty object of strings")
        for key, value in meta.items():
            try:
                _check_name(key)
                _check_name(value)
            except InvalidBlob as exc:
                raise _malformed(f"bad __metadata__ entry: {exc.message}") from None

    data_len = total - 8 - n
    entries: list[tuple[str, tuple[int, ...], int, int]] = []
    for name, entry in obj.items():
        try:
            _check_name(name)
        except InvalidBlob as exc:
            raise _malformed(f"bad tensor name in header: {exc.message}") from None
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise _malformed(f"tensor {name!r}: header entry must have exactly dtype, shape, data_offsets (got {keys})")
        dtype = entry["dtype"]
        if dtype != DTYPE_NAME:
            raise InvalidBlob(f"tensor {name!r} has dtype {dtype!r}; only {DTYPE_NAME} is accepted", reason="wrong_dtype")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise _malformed(f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        offsets = entry["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise _malformed(f"tensor {name!r}: data_offsets {offsets!r} is not a pair of integers")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise _malformed(f"tensor {name!r}: data_offsets [{begin}, {end}] are not 0 <= begin <= end")
        if end > data_len:
            raise _malformed(
                f"tensor {name!r}: data_offsets [{begin}, {end}] out of range (data section is {data_len} bytes)"
            )
        shape_t = tuple(shape)
        if end - begin != math.prod(shape_t) * 4:
            raise _malformed(
                f"tensor {name!r}: shape {_shape_str(shape_t)} needs {math.prod(shape_t) * 4} bytes "
                f"but data_offsets span {end - begin}"
            )
        entries.append((name, shape_t, begin, end))

    position = 0
    for name, _, begin, end in sorted(entries, key=lambda e: (e[2], e[3])):
        if begin < position:
            raise _malformed(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap the previous tensor")
        if begin > position:
            raise _malformed(f"tensor {name!r}: gap of {begin - position} bytes before data_offsets [{begin}, {end}]")
        position = end
    if position != data_len:
        raise _malformed(f"{data_len - position} trailing bytes after the last tensor")

    entries.sort(key=lambda e: e[0])
    canonical, _ = _header([(name, shape) for name, shape, _, _ in entries], meta)
    if canonical != header:
        raise _malformed(
            "tensor file header is not canonical (tensors laid out in name order, sorted keys, "
            "no spaces, space padding to a multiple of 8)"
        )

    if expected is not None:
        got = {name for name, _, _, _ in entries}
        want = set(expected)
        if got != want:
            parts = []
            if want - got:
                parts.append(f"missing {_show(want - got)}")
            if got - want:
                parts.append(f"unexpected {_show(got - want)}")
            raise InvalidBlob("tensor names differ from the model: " + ", ".join(parts), reason="wrong_names")
        for name, shape, _, _ in entries:
            want_shape = tuple(int(d) for d in expected[name])
            if shape != want_shape:
                raise InvalidBlob(
                    f"tensor {name!r} has shape {_shape_str(shape)}, expected {_shape_str(want_shape)}",
                    reason="wrong_shape",
                )

    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, shape, begin, end in entries:
        arr = np.frombuffer(view, dtype=_WIRE, count=(end - begin) // 4, offset=base + begin)
        arr = arr.astype(DTYPE, copy=True).reshape(shape)
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            raise InvalidBlob(f"tensor {name!r} has {bad} non-finite value(s) (NaN or inf)", reason="non_finite")
        out[name] = arr
    return out, meta


def _short(exc: BaseException, limit: int = 120) -> str:
    s = str(exc) or type(exc).__name__
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --- torch bridge ------------------------------------------------------------------------------
def state_dict_to_arrays(module_or_state_dict: Any) -> dict[str, np.ndarray]:
    """float32 numpy copies of a module's (or state dict's) floating-point entries.

    Parameters and buffers are included; integer/bool buffers (e.g. BatchNorm's
    ``num_batches_tracked``) and non-tensor extra state are left out.
    """
    import torch

    sd = module_or_state_dict.state_dict() if hasattr(module_or_state_dict, "state_dict") else module_or_state_dict
    out: dict[str, np.ndarray] = {}
    for name, value in sd.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                out[name] = value.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            out[name] = value.astype(DTYPE, copy=True)
    return out


def load_arrays_into(module: "torch.nn.Module", arrays: Mapping[str, np.ndarray]) -> None:
    """Copy ``arrays`` into the module's floating-point parameters and buffers, in place.

    Strict: the names must be exactly those :func:`state_dict_to_arrays` yields, with the same
    shapes (InvalidBlob ``wrong_names`` / ``wrong_shape`` otherwise, and nothing is changed).
    """
    import torch

    sd = module.state_dict()
    targets = {name: t for name, t in sd.items() if isinstance(t, torch.Tensor) and t.is_floating_point()}
    if set(targets) != set(arrays):
        parts = []
        if set(targets) - set(arrays):
            parts.append(f"missing {_show(set(targets) - set(arrays))}")
        if set(arrays) - set(targets):
            parts.append(f"unexpected {_show(set(arrays) - set(targets))}")
        raise InvalidBlob("tensor names differ from the model: " + ", ".join(parts), reason="wrong_names")
    for name in sorted(targets):
        got = tuple(int(d) for d in np.shape(arrays[name]))
        want = tuple(targets[name].shape)
        if got != want:
            raise InvalidBlob(
                f"tensor {name!r} has shape {_shape_str(got)}, expected {_shape_str(want)}", reason="wrong_shape"
            )
    with torch.no_grad():
        for name in sorted(targets):
            src = torch.tensor(np.asarray(arrays[name], dtype=DTYPE))
            targets[name].copy_(src)


# --- JSON ----------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8 (not \\u-escaped), floats by repr.

    NaN/inf raise InvalidBlob(reason="non_finite"); other unserialisable values "malformed".
    numpy scalars are written as the equivalent Python numbers.
    """
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
        ).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in a string
        raise InvalidBlob(f"cannot encode JSON: a string is not valid Unicode ({_short(exc)})") from None
    except ValueError as exc:
        if "out of range float" in str(exc).lower():
            raise InvalidBlob(f"cannot encode JSON with NaN or infinity ({exc})", reason="non_finite") from None
        raise InvalidBlob(f"cannot encode JSON: {_short(exc)}") from None
    except (TypeError, RecursionError) as exc:
        raise InvalidBlob(f"cannot encode JSON: {_short(exc)}") from None


def decode_json(data: bytes | bytearray | memoryview, *, max_bytes: int) -> Any:
    """Parse a UTF-8 JSON document of at most ``max_bytes`` bytes.

    Strict: no NaN/Infinity literals, no duplicate keys, no byte-order mark. Raises
    InvalidBlob(reason="too_large") or InvalidBlob(reason="malformed").
    """
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise InvalidBlob(f"JSON document is {len(raw)} bytes, more than the limit of {max_bytes}", reason="too_large")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"not a valid JSON document ({_short(exc)})") from None
