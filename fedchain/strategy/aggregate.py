"""Deterministic numeric building blocks for strategies: pure numpy, no BLAS.

Reductions such as ``np.sum``, ``np.average``, ``np.dot`` or ``tensordot`` may reorder additions
(pairwise summation, SIMD lanes, threaded BLAS), so their result can differ in the last bit between
machines or library versions. Everything here is elementwise: each output element is computed by
the same sequence of IEEE 754 operations, each rounded to nearest-even, in a fixed order, with no
fused multiply-add. docs/protocol.md ("Aggregation rule (FedAvg)") is the normative description.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, TypeVar

import numpy as np

from fedchain.pools import run_split, usable_cpus
from fedchain.strategy.base import AggregationError

_T = TypeVar("_T")


def weighted_mean(arrays: Sequence[np.ndarray], weights: Sequence[int]) -> np.ndarray:
    """``float32( (sum_k float64(w_k) * float64(x_k)) / (sum_k float64(w_k)) )``, elementwise.

    The sums run in the given order (k = 0, 1, ...), in float64, one rounding per multiply and per
    add; the division is one float64 division; the cast to float32 rounds to nearest-even.
    Weights are positive integers (converted to float64 with round-to-nearest-even, exact below
    2**53). Arrays must be real floating point and all of one shape.
    """
    return weighted_mean_f64(arrays, weights).astype(np.float32)


def weighted_mean_f64(arrays: Sequence[np.ndarray], weights: Sequence[int]) -> np.ndarray:
    """:func:`weighted_mean` before its final cast: the float64 quotient (same operations)."""
    if len(arrays) == 0:
        raise AggregationError("weighted_mean of no arrays")
    if len(arrays) != len(weights):
        raise AggregationError(f"weighted_mean: {len(arrays)} arrays but {len(weights)} weights")
    first = np.asarray(arrays[0])
    shape = first.shape
    acc = np.zeros(shape, dtype=np.float64)
    term = np.empty(shape, dtype=np.float64)
    total = np.float64(0.0)
    for k, (x, w) in enumerate(zip(arrays, weights)):
        x = np.asarray(x)
        if x.shape != shape:
            raise AggregationError(f"weighted_mean: array {k} has shape {x.shape}, expected {shape}")
        if x.dtype.kind != "f":
            raise AggregationError(f"weighted_mean: array {k} has dtype {x.dtype}, not floating point")
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w <= 0:
            raise AggregationError(f"weighted_mean: weight {k} must be a positive integer, got {w!r}")
        w64 = np.float64(int(w))
        np.multiply(x, w64, out=term, dtype=np.float64)
        np.add(acc, term, out=acc)
        total = total + w64
    np.divide(acc, total, out=acc)
    return acc


def as_f64(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-ordered float64 array (exact for float32 input)."""
    return np.ascontiguousarray(x, dtype=np.float64)


def fixed_sum(x: np.ndarray) -> np.float64:
    """``((x_0 + x_1) + x_2) + ...`` over the elements of ``x`` in C order, in float64.

    ``np.sum`` uses pairwise summation with SIMD lanes, whose grouping is an implementation detail;
    ``np.add.accumulate`` is defined as the recurrence ``r_i = r_{i-1} + x_i`` and so adds strictly
    left to right. The last running sum is the result (0.0 for an empty array)."""
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return np.float64(0.0)
    return np.float64(np.add.accumulate(flat)[-1])


def squared_distance(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], names: Sequence[str]) -> np.float64:
    """``||a - b||^2`` over all tensors: per tensor (in the order of ``names``) the fixed-order sum
    of the elementwise squared float64 differences, then those per-tensor sums added in that order."""
    total = np.float64(0.0)
    for name in names:
        d = np.subtract(as_f64(a[name]), as_f64(b[name]))
        total = total + fixed_sum(np.multiply(d, d))
    return total


def squared_norm(a: Mapping[str, np.ndarray], names: Sequence[str]) -> np.float64:
    """``||a||^2`` over all tensors, summed as in :func:`squared_distance`."""
    total = np.float64(0.0)
    for name in names:
        x = as_f64(a[name])
        total = total + fixed_sum(np.multiply(x, x))
    return total


def ordered_mean(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``(x_0 + x_1 + ... ) / k`` elementwise in float64, added in the given order, one division."""
    if len(arrays) == 0:
        raise AggregationError("mean of no arrays")
    acc = np.array(as_f64(arrays[0]), dtype=np.float64, copy=True)
    for x in arrays[1:]:
        np.add(acc, as_f64(x), out=acc)
    np.divide(acc, np.float64(len(arrays)), out=acc)
    return acc


def sorted_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays stacked on a new first (node) axis in float64 and sorted along it.

    The sorted output does not depend on the sort algorithm (numpy picks SIMD variants by CPU) as
    long as equal keys are bit-identical: the only finite values that compare equal with different
    bits are -0.0 and +0.0, so negative zeros are turned into +0.0 first (``x + 0.0``)."""
    stacked = np.stack([as_f64(x) for x in arrays])
    np.add(stacked, 0.0, out=stacked)
    return np.sort(stacked, axis=0)


#: Elements per slice of the streaming helpers below (512 KiB of float64: stays in cache).
STREAM_CHUNK = 1 << 16

#: Arrays of at least this many slices are added on several threads (numpy releases the GIL in its
#: loops). Each element still sees the same operations in the same order: the threads split the
#: array into contiguous spans, so the result does not depend on their number.
PARALLEL_MIN_SLICES = 16
_MAX_ADD_WORKERS = 4


def _add_workers(size: int) -> int:
    if size < PARALLEL_MIN_SLICES * STREAM_CHUNK:
        return 1
    return max(1, min(usable_cpus(), _MAX_ADD_WORKERS))


def spans(size: int, parts: int) -> list[tuple[int, int]]:
    """``[0, size)`` cut into at most ``parts`` contiguous spans whose starts are multiples of
    :data:`STREAM_CHUNK` (so every span walks the same slices the whole array would)."""
    per = -(-size // max(1, parts))
    per = max(STREAM_CHUNK, -(-per // STREAM_CHUNK) * STREAM_CHUNK)
    return [(lo, min(size, lo + per)) for lo in range(0, size, per)] or [(0, 0)]


def _on_spans(fn: Callable[..., _T], size: int, *args: object) -> list[_T]:
    """``fn(*args, lo, hi)`` for each span of ``[0, size)`` (:func:`spans`), on the streaming
    merge's threads from :data:`PARALLEL_MIN_SLICES` slices up (one span, on this thread, below)."""
    return run_split("running-mean", _MAX_ADD_WORKERS, fn,
                     [(*args, lo, hi) for lo, hi in spans(size, _add_workers(size))])


def _finite_span(flat: np.ndarray, lo: int, hi: int) -> bool:
    flag = np.empty(min(STREAM_CHUNK, max(1, hi - lo)), dtype=bool)
    for start in range(lo, hi, STREAM_CHUNK):
        part = flat[start : min(start + STREAM_CHUNK, hi)]
        f = flag[: part.size]
        np.isfinite(part, out=f)
        if not f.all():
            return False
    return True


def all_finite(x: np.ndarray) -> bool:
    """Whether every element of ``x`` is finite, in slices of :data:`STREAM_CHUNK` elements (no
    temporary as large as ``x``), on the streaming merge's threads from the same size up."""
    flat = np.asarray(x).reshape(-1)
    return all(_on_spans(_finite_span, flat.size, flat))


def _divide_span(acc: np.ndarray, total: np.float64, out32: np.ndarray | None, lo: int, hi: int) -> None:
    """``acc[lo:hi] /= total`` in place, slice by slice, each slice then cast into ``out32``."""
    for start in range(lo, hi, STREAM_CHUNK):
        part = acc[start : min(start + STREAM_CHUNK, hi)]
        np.divide(part, total, out=part)
        if out32 is not None:
            out32[start : start + part.size] = part


def _add_span(acc: np.ndarray, flat: np.ndarray, base: np.ndarray | None, w64: np.float64, first: bool,
              lo: int, hi: int) -> None:
    """``acc[lo:hi] += w64 * float64(flat[lo:hi])`` (or of the delta ``flat - base``), slice by
    slice, with the operations :class:`RunningWeightedMean` documents. ``first``: ``acc[lo:hi]`` is
    not yet initialised and receives ``term + 0.0`` (the same bits as ``0.0 + term``)."""
    # slice buffers live only during the call (one accumulator per tensor would otherwise keep its own)
    n = min(STREAM_CHUNK, max(1, hi - lo))
    term_buf = np.empty(n, dtype=np.float64)
    x_buf = b_buf = term_buf
    if base is not None:
        x_buf, b_buf = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
    for start in range(lo, hi, STREAM_CHUNK):
        end = min(start + STREAM_CHUNK, hi)
        m = end - start
        term = term_buf[:m]
        if base is None:
            term[...] = flat[start:end]  # exact: float32 -> float64 (a plain cast outruns multiply's
            np.multiply(term, w64, out=term)  # buffered one: 4.7 against 5.6 ms for 10 x 1M here)
        else:
            xs, bs = x_buf[:m], b_buf[:m]
            xs[...] = flat[start:end]  # exact: float32 -> float64
            bs[...] = base[start:end]
            np.subtract(xs, bs, out=xs)
            np.add(xs, 0.0, out=xs)
            np.multiply(xs, w64, out=term)
        if first:
            np.add(term, 0.0, out=acc[start:end])
        else:
            np.add(acc[start:end], term, out=acc[start:end])


class RunningWeightedMean:
    """:func:`weighted_mean_f64` one array at a time, in O(array) memory: ``add(x_0, w_0)``,
    ``add(x_1, w_1)``, ... then :meth:`result_f64` (or :meth:`result`) equals
    ``weighted_mean_f64([x_0, x_1, ...], [w_0, w_1, ...])`` to the bit.

    It runs the same IEEE 754 operations in the same order: per element, ``acc = 0.0``, then
    ``term = float64(x_k) * float64(w_k)`` and ``acc = acc + term`` for k = 0, 1, ..., then one
    float64 division by ``((0.0 + w_0) + w_1) + ...``. Only the traversal differs: each ``add``
    walks its array in slices of :data:`STREAM_CHUNK` elements (every operation is elementwise, so
    slicing changes no result), which keeps the temporaries small; an array of at least
    :data:`PARALLEL_MIN_SLICES` slices is cut into contiguous spans added on up to one thread per
    CPU (each element's operations and their order are unchanged, so neither does the result).

    ``add(x, w, minus=b)`` adds the delta ``x - b`` instead, computed as :func:`fedchain.strategy.
    points.delta_of` does (``float64(x) - float64(b)``, then ``+ 0.0`` turning -0.0 into +0.0): the
    running form of the server optimisers' pseudo-gradient.

    The first ``add`` writes ``term + 0.0`` into an uninitialised accumulator instead of adding
    ``term`` to a zeroed one: IEEE 754 addition is commutative (signed zeros included), so each
    element is the same ``0.0 + term``, and fresh pages are faulted in once, by a write, instead of
    twice (a zeroed page is first mapped read-only by the read of ``acc + term``, then copied on
    the write): in the 10 x 1M round benchmark the first add into a 4 MB accumulator took 3.5 ms
    that way and 2.4 ms writing, against 0.45 ms for each later one. (The streaming merge also
    maps the pages in beforehand where the kernel can: ``fedchain.memory.populate``.)
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        self._acc = np.empty(self.shape, dtype=np.float64)  # written by the first add
        self.total = np.float64(0.0)
        self.count = 0

    def add(self, x: np.ndarray, w: int, *, minus: np.ndarray | None = None) -> None:
        k = self.count
        x = np.asarray(x)
        if x.shape != self.shape:
            raise AggregationError(f"weighted_mean: array {k} has shape {x.shape}, expected {self.shape}")
        if x.dtype.kind != "f":
            raise AggregationError(f"weighted_mean: array {k} has dtype {x.dtype}, not floating point")
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w <= 0:
            raise AggregationError(f"weighted_mean: weight {k} must be a positive integer, got {w!r}")
        w64 = np.float64(int(w))
        acc = self._acc.reshape(-1)
        flat = x.reshape(-1)
        base = None if minus is None else np.asarray(minus).reshape(-1)
        _on_spans(_add_span, acc.size, acc, flat, base, w64, k == 0)
        self.total = self.total + w64
        self.count += 1

    @property
    def buffer(self) -> np.ndarray:
        """The float64 accumulator (uninitialised until the first ``add``), for memory hints such
        as :func:`fedchain.memory.populate`; None once a result was taken."""
        return self._acc

    def _finish(self, out32: np.ndarray | None) -> np.ndarray:
        if self.count == 0:
            raise AggregationError("weighted_mean of no arrays")
        acc, self._acc = self._acc, None
        flat = acc.reshape(-1)
        flat32 = None if out32 is None else out32.reshape(-1)
        _on_spans(_divide_span, flat.size, flat, self.total, flat32)
        return acc if out32 is None else out32

    def result_f64(self) -> np.ndarray:
        """The float64 quotient (computed in place: call once; the accumulator is spent)."""
        return self._finish(None)

    def result(self) -> np.ndarray:
        """:func:`weighted_mean`'s float32 result: the float64 quotient cast to float32, slice by
        slice (each slice cast while it is in cache; the same bits as ``result_f64().astype``)."""
        return self._finish(np.empty(self.shape, dtype=np.float32))
