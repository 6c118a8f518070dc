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

Secure mode (protocol v2) adds a fixed-point codec beside it ("fixed point" section): integers
modulo 2^32 or 2^64 in two's complement, stored as "U32"/"U64" under the same canonical rules.

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
    "FIXED_DTYPE_NAMES",
    "FixedPointConfig",
    "add_fixed",
    "decode_fixed",
    "decode_int_tensors",
    "dequantize",
    "encode_fixed",
    "encode_int_tensors",
    "fixed_to_signed",
    "quantize",
    "rounded_l2_bound",
    "rounding_generator",
    "sum_fixed",
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
#: Every dtype this module writes: F32 (models, plaintext updates) and the fixed-point integer
#: dtypes (see "Fixed point" below).
_WIRE_DTYPES: dict[str, np.dtype] = {
    "F32": _WIRE,
    "U8": np.dtype("u1"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
}
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
        from fedchain.address import to_checksum_address

        return {
            "chain_id": str(int(self.chain_id)),
            "contract": to_checksum_address(self.contract),
            "node": to_checksum_address(self.node),
            "round": str(int(self.round)),
        }


_IDENTITY_KEYS = frozenset({"chain_id", "contract", "node", "round"})


def _header(spec: list[tuple[Any, ...]], metadata: Mapping[str, str] | None = None) -> tuple[bytes, int]:
    """Canonical header bytes (padded) and data length for ``spec`` sorted by name.

    ``spec`` entries are ``(name, shape)`` (F32) or ``(name, shape, dtype_name)`` (fixed point)."""
    entries: dict[str, Any] = {}
    if metadata:
        entries["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for item in spec:
        name, shape = item[0], item[1]
        dtype_name = item[2] if len(item) > 2 else DTYPE_NAME
        end = offset + math.prod(shape) * _WIRE_DTYPES[dtype_name].itemsize
        entries[name] = {"data_offsets": [offset, end], "dtype": dtype_name, "shape": list(shape)}
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
    dtypes: Any = None,
    extras: frozenset[str] = frozenset(),
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """The arrays and the ``__metadata__`` (None if absent) of a canonical tensor file.

    ``dtypes`` (fixed point only): a function name -> the one dtype name accepted for that tensor;
    None accepts F32 only. ``extras``: names left out of the ``expected`` check (a masked blob's
    share tensor), returned like the others."""
    accepted = dtypes if dtypes is not None else (lambda _name: DTYPE_NAME)
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
        want_dtype = accepted(name)
        if dtype != want_dtype:
            raise InvalidBlob(f"tensor {name!r} has dtype {dtype!r}; only {want_dtype} is accepted", reason="wrong_dtype")
        itemsize = _WIRE_DTYPES[want_dtype].itemsize
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
        if end - begin != math.prod(shape_t) * itemsize:
            raise _malformed(
                f"tensor {name!r}: shape {_shape_str(shape_t)} needs {math.prod(shape_t) * itemsize} bytes "
                f"but data_offsets span {end - begin}"
            )
        entries.append((name, shape_t, begin, end))
    kinds = {name: accepted(name) for name, _, _, _ in entries}

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
    canonical, _ = _header([(name, shape, kinds[name]) for name, shape, _, _ in entries], meta)
    if canonical != header:
        raise _malformed(
            "tensor file header is not canonical (tensors laid out in name order, sorted keys, "
            "no spaces, space padding to a multiple of 8)"
        )

    if expected is not None:
        got = {name for name, _, _, _ in entries} - set(extras)
        want = set(expected)
        if got != want:
            parts = []
            if want - got:
                parts.append(f"missing {_show(want - got)}")
            if got - want:
                parts.append(f"unexpected {_show(got - want)}")
            raise InvalidBlob("tensor names differ from the model: " + ", ".join(parts), reason="wrong_names")
        for name, shape, _, _ in entries:
            if name in extras:
                continue  # a non-model tensor of a fixed-point file (shares), checked by its reader
            want_shape = tuple(int(d) for d in expected[name])
            if shape != want_shape:
                raise InvalidBlob(
                    f"tensor {name!r} has shape {_shape_str(shape)}, expected {_shape_str(want_shape)}",
                    reason="wrong_shape",
                )

    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, shape, begin, end in entries:
        if kinds[name] != DTYPE_NAME:
            wire = _WIRE_DTYPES[kinds[name]]
            raw = np.frombuffer(view, dtype=wire, count=(end - begin) // wire.itemsize, offset=base + begin)
            out[name] = raw.astype(wire.newbyteorder("="), copy=True).reshape(shape)
            continue
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


# --- fixed point (protocol v2, secure mode) ------------------------------------------------------
# A secure-mode update is a vector of integers modulo 2^M (M = 32, or 64 for more headroom), in
# two's complement: the residue r stands for the signed integer r - 2^M when r >= 2^(M-1). A value
# x is represented by q = floor(x * 2^k) or floor(x * 2^k) + 1, chosen by stochastic rounding
# (P[+1] = the fractional part, so E[q] = x * 2^k), so every |q - x * 2^k| < 1.
#
# On the wire the residues are stored as unsigned integers, safetensors "U32" (or "U64"),
# little-endian, in the same canonical form as F32 files: tensors sorted and laid out by name,
# sorted compact JSON header, space padding to a multiple of 8. Unsigned because the file holds
# ring elements: a masked input is uniform on [0, 2^M) and has no sign; the signed reading is
# applied only to an unmasked sum (:func:`fixed_to_signed`).
#
# Sum bound. For n inputs with ||x_u||_2 <= C (so every |x_u,i| <= C), the decoded sum
# sum_u q_u,i / 2^k differs from sum_u x_u,i by less than n / 2^k in every coordinate, and the
# signed sum never wraps as long as n * (floor(C * 2^k) + 1) + noise < 2^(M-1)
# (:meth:`FixedPointConfig.max_nodes`, ``noise`` the bound on the summed DP noise per coordinate).

#: safetensors dtype name of a fixed-point tensor, by modulus bits.
FIXED_DTYPE_NAMES = {32: "U32", 64: "U64"}
_FIXED_NP = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}
_SIGNED_NP = {32: np.dtype(np.int32), 64: np.dtype(np.int64)}
#: Default failure probability of one conditional-rounding try (Kairouz et al. 2021 use e^-0.5).
ROUNDING_BETA = math.exp(-0.5)
_ROUNDING_TRIES = 1000


@dataclass(frozen=True)
class FixedPointConfig:
    """What a secure round's config commits for the codec: the L2 clip bound ``clip`` (C, in model
    units), the scale 2^``scale_bits`` and the modulus 2^``modulus_bits`` (32 or 64).

    JSON form (:meth:`to_dict`): ``{"clip": 1.0, "modulus_bits": 32, "scale_bits": 16}``."""

    clip: float
    scale_bits: int
    modulus_bits: int = 32

    def __post_init__(self) -> None:
        from fedchain.errors import ConfigError

        if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) or not math.isfinite(self.clip) or self.clip <= 0:
            raise ConfigError(f"fixed point: clip must be a positive finite number, got {self.clip!r}")
        if not _is_int(self.scale_bits) or not 0 <= self.scale_bits <= 52:
            raise ConfigError(f"fixed point: scale_bits must be an integer in [0, 52], got {self.scale_bits!r}")
        if self.modulus_bits not in FIXED_DTYPE_NAMES or not _is_int(self.modulus_bits):
            raise ConfigError(f"fixed point: modulus_bits must be 32 or 64, got {self.modulus_bits!r}")
        if self.max_abs_coordinate() >= 1 << (self.modulus_bits - 1):
            raise ConfigError(
                f"fixed point: clip {self.clip} at scale 2^{self.scale_bits} does not fit in "
                f"{self.modulus_bits}-bit two's complement",
                hint="lower scale_bits or use modulus_bits 64",
            )

    @property
    def scale(self) -> float:
        return float(1 << self.scale_bits)

    @property
    def modulus(self) -> int:
        return 1 << self.modulus_bits

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of the residues (uint32 or uint64)."""
        return _FIXED_NP[self.modulus_bits]

    @property
    def dtype_name(self) -> str:
        """safetensors dtype name: ``"U32"`` or ``"U64"``."""
        return FIXED_DTYPE_NAMES[self.modulus_bits]

    def max_abs_coordinate(self) -> int:
        """Bound on |q_i| of one encoded input: floor(C * 2^k) + 1."""
        return int(math.floor(self.clip * self.scale)) + 1

    def max_nodes(self, noise_bound: int = 0) -> int:
        """Largest n with n * max_abs_coordinate() + noise_bound < 2^(M-1): sums of up to n inputs
        (plus that much noise per coordinate) never wrap around."""
        room = (1 << (self.modulus_bits - 1)) - 1 - int(noise_bound)
        return max(0, room // self.max_abs_coordinate())

    def to_dict(self) -> dict[str, Any]:
        return {"clip": float(self.clip), "modulus_bits": int(self.modulus_bits), "scale_bits": int(self.scale_bits)}

    @classmethod
    def from_dict(cls, obj: Any) -> "FixedPointConfig":
        from fedchain.errors import ConfigError

        if not isinstance(obj, Mapping) or set(obj) != {"clip", "modulus_bits", "scale_bits"}:
            raise ConfigError(f"fixed point config must have exactly clip, modulus_bits, scale_bits (got {obj!r})")
        clip = obj["clip"]
        return cls(clip=float(clip) if _is_int(clip) else clip, scale_bits=obj["scale_bits"], modulus_bits=obj["modulus_bits"])


def rounding_generator(seed: bytes, label: bytes = b"rounding") -> np.random.Generator:
    """numpy ``Generator(PCG64)`` seeded by HKDF-SHA256(``seed``, info="fedchain/fixed/v1/" + label).

    Same ``seed`` and label, same stream, on every machine (PCG64 and numpy's ``random()`` are
    specified bit-for-bit). The node's seed is secret: rounding must not be predictable."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not isinstance(seed, (bytes, bytearray)) or len(seed) < 16:
        raise ValueError("a rounding seed is at least 16 bytes")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fedchain/fixed/v1/" + bytes(label)).derive(bytes(seed))
    return np.random.Generator(np.random.PCG64(int.from_bytes(key, "big")))


def rounded_l2_bound(c: float, dim: int, beta: float = ROUNDING_BETA) -> float:
    """L2 bound that conditional stochastic rounding guarantees for an input of L2 norm <= c
    (integer units: c = C * 2^k) in ``dim`` coordinates (Kairouz, Liu, Steinke, ICML 2021, Sec. 4.1):
    min(c + sqrt(d), sqrt(c^2 + d/4 + sqrt(2 ln(1/beta)) * (c + sqrt(d)/2))). beta = 0: the first."""
    bound_1 = c + math.sqrt(dim)
    if beta <= 0:
        return bound_1
    squared = c * c + dim / 4.0 + math.sqrt(2.0 * math.log(1.0 / beta)) * (c + math.sqrt(dim) / 2.0)
    return min(bound_1, math.sqrt(squared))


def _sum_squares_exact(q: np.ndarray, max_abs: int) -> int:
    """Exact sum of squares of int64 values with |q| <= max_abs (integer adds are order-free)."""
    sq = q * q  # |q| < 2^31.5 by the config check, so q*q < 2^63
    chunk = max(1, ((1 << 63) - 1) // max(1, max_abs * max_abs))
    return sum(int(sq[i : i + chunk].sum()) for i in range(0, sq.size, chunk))


def quantize(
    tensors: Mapping[str, Any],
    config: FixedPointConfig,
    seed: bytes,
    *,
    conditional: bool = True,
    beta: float = ROUNDING_BETA,
) -> dict[str, np.ndarray]:
    """Stochastic rounding of (already clipped) ``tensors`` to residues modulo 2^M.

    Coordinates are taken in name order, one stream from :func:`rounding_generator` (``seed``).
    With ``conditional`` (default) the rounding is redrawn until ||q||_2 <= :func:`rounded_l2_bound`
    (C * 2^k, d, beta), exactly in integers: the L2 sensitivity the accountant uses then holds for
    every encoded input. Raises InvalidBlob ``non_finite`` or ``out_of_range`` (||x||_2 > C: clip
    first, :func:`fedchain.privacy.clipping.clip_l2`).
    """
    names = sorted(tensors)
    for name in names:
        _check_name(name)
    flats = [np.asarray(tensors[name], dtype=np.float64).reshape(-1) for name in names]
    shapes = [tuple(int(d) for d in np.shape(tensors[name])) for name in names]
    x = np.concatenate(flats) if flats else np.zeros(0)
    if not np.isfinite(x).all():
        raise InvalidBlob("cannot quantise non-finite values", reason="non_finite")
    norm = math.sqrt(float(np.sum(x * x)))
    if norm > config.clip * (1 + 1e-9):
        raise InvalidBlob(
            f"update has L2 norm {norm:.6g}, more than the clip bound {config.clip}", reason="out_of_range"
        )
    y = x * config.scale  # exact: a power of two
    low = np.floor(y)
    frac = y - low
    low_i = low.astype(np.int64)
    rng = rounding_generator(seed)
    max_abs = config.max_abs_coordinate()
    limit = rounded_l2_bound(config.clip * config.scale, x.size, beta) if conditional else None
    for _ in range(_ROUNDING_TRIES):
        q = low_i + (rng.random(x.size) < frac)
        if limit is None or _sum_squares_exact(q, max_abs) <= limit * limit:
            break
    else:  # pragma: no cover - probability beta^1000
        raise InvalidBlob("conditional rounding did not meet its norm bound", reason="out_of_range")
    residues = q.astype(np.uint64).astype(config.dtype)  # two's complement, modulo 2^M
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, shape in zip(names, shapes):
        size = math.prod(shape)
        out[name] = residues[start : start + size].reshape(shape)
        start += size
    return out


def fixed_to_signed(residues: np.ndarray, modulus_bits: int = 32) -> np.ndarray:
    """The two's complement reading of residues modulo 2^M, as int64."""
    arr = np.ascontiguousarray(residues, dtype=_FIXED_NP[modulus_bits])
    return arr.view(_SIGNED_NP[modulus_bits]).astype(np.int64)


def dequantize(residues: Mapping[str, np.ndarray], config: FixedPointConfig) -> dict[str, np.ndarray]:
    """float64 values (signed reading / 2^k) of fixed-point tensors: one input, or a sum."""
    return {name: fixed_to_signed(residues[name], config.modulus_bits).astype(np.float64) / config.scale for name in sorted(residues)}


def add_fixed(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], config: FixedPointConfig) -> dict[str, np.ndarray]:
    """Coordinate-wise a + b modulo 2^M (same names and shapes)."""
    if set(a) != set(b):
        raise InvalidBlob("fixed-point tensors to add have different names", reason="wrong_names")
    out = {}
    for name in sorted(a):
        x = np.asarray(a[name], dtype=config.dtype)
        y = np.asarray(b[name], dtype=config.dtype)
        if x.shape != y.shape:
            raise InvalidBlob(f"tensor {name!r}: shapes {x.shape} and {y.shape} differ", reason="wrong_shape")
        out[name] = x + y  # unsigned numpy arithmetic wraps modulo 2^M
    return out


def sum_fixed(inputs: Iterable[Mapping[str, np.ndarray]], config: FixedPointConfig) -> dict[str, np.ndarray]:
    """Sum modulo 2^M of fixed-point tensor dicts (exact: the order does not matter)."""
    total: dict[str, np.ndarray] | None = None
    for item in inputs:
        total = {k: np.array(v, dtype=config.dtype) for k, v in item.items()} if total is None else add_fixed(total, item, config)
    if total is None:
        raise InvalidBlob("no fixed-point inputs to sum", reason="malformed")
    return total


def encode_int_tensors(tensors: Mapping[str, np.ndarray], *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Canonical safetensors bytes of unsigned integer arrays (uint8 "U8", uint32 "U32", uint64
    "U64"; the array's own dtype, never cast). Same canonical rules as :func:`encode_tensors`."""
    kinds = {np.dtype(np.uint8): "U8", np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64"}
    arrays: list[tuple[str, np.ndarray, str]] = []
    for name in sorted(tensors, key=lambda n: (not isinstance(n, str), str(n))):
        _check_name(name)
        value = np.asarray(tensors[name])
        kind = kinds.get(value.dtype)
        if kind is None:
            raise InvalidBlob(f"tensor {name!r} has dtype {value.dtype}; fixed-point tensors are uint8/32/64", reason="wrong_dtype")
        arrays.append((name, np.ascontiguousarray(value, dtype=_WIRE_DTYPES[kind]), kind))
    for key, value in (metadata or {}).items():
        _check_name(key)
        _check_name(value)
    header, _ = _header([(name, arr.shape, kind) for name, arr, kind in arrays], metadata)
    if len(header) > MAX_HEADER_BYTES:
        raise InvalidBlob(f"header would be {len(header)} bytes, more than the {MAX_HEADER_BYTES}-byte limit", reason="too_large")
    parts: list[Any] = [len(header).to_bytes(8, "little"), header]
    parts.extend(arr.reshape(-1).view(np.uint8).data for _, arr, _ in arrays if arr.size)
    return b"".join(parts)


def decode_int_tensors(
    data: bytes | bytearray | memoryview,
    *,
    dtypes: Mapping[str, str] | str,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    extras: Iterable[str] = (),
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """Parse a canonical integer tensor file: arrays (native uint copies) and ``__metadata__``.

    ``dtypes``: the one dtype name of every tensor (``"U32"``), or a mapping name -> dtype name in
    which the key ``"*"`` gives the dtype of all other tensors. ``extras``: names exempt from the
    ``expected`` check. Raises InvalidBlob with the reasons of :func:`decode_tensors`.
    """
    if isinstance(dtypes, str):
        accept = lambda _name, d=dtypes: d  # noqa: E731
    else:
        table = dict(dtypes)
        accept = lambda name: table.get(name, table.get("*"))  # noqa: E731
    return _decode(data, max_bytes=max_bytes, expected=expected, dtypes=accept, extras=frozenset(extras))


def _check_identity(meta: Mapping[str, str] | None, identity: UpdateIdentity, extra_keys: frozenset[str] = frozenset()) -> None:
    if meta is None or set(meta) != _IDENTITY_KEYS | extra_keys:
        want = ", ".join(sorted(_IDENTITY_KEYS | extra_keys))
        raise _malformed(f"update blob does not name its sender: __metadata__ must hold exactly {want}")
    want_meta = identity.metadata()
    diff = ", ".join(f"{k} {meta[k]!r} (expected {want_meta[k]!r})" for k in sorted(want_meta) if meta[k] != want_meta[k])
    if diff:
        raise InvalidBlob(f"update blob was made for another sender or round: {diff}", reason="not_own_update")


def encode_fixed(
    residues: Mapping[str, np.ndarray], config: FixedPointConfig, *, identity: UpdateIdentity | None = None
) -> bytes:
    """Canonical bytes of a fixed-point tensor file (plaintext update or unmasked sum) in
    ``config``'s dtype; with ``identity``, an update blob naming its sender (as :func:`encode_update`)."""
    for name, value in residues.items():
        if np.asarray(value).dtype != config.dtype:
            raise InvalidBlob(f"tensor {name!r} is {np.asarray(value).dtype}, not {config.dtype}", reason="wrong_dtype")
    return encode_int_tensors(residues, metadata=identity.metadata() if identity is not None else None)


def decode_fixed(
    data: bytes | bytearray | memoryview,
    config: FixedPointConfig,
    *,
    identity: UpdateIdentity | None = None,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_fixed`: residues by name. Without ``identity`` the file must have no
    ``__metadata__``; with it, exactly the sender's (``not_own_update`` if another's)."""
    arrays, meta = decode_int_tensors(data, dtypes=config.dtype_name, expected=expected, max_bytes=max_bytes)
    if identity is None:
        if meta is not None:
            raise _malformed("fixed-point tensor file has __metadata__ but no identity was expected")
    else:
        _check_identity(meta, identity)
    return arrays


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
