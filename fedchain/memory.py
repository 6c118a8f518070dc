"""The C allocator's settings for rounds that stream large blobs (glibc only; elsewhere a no-op).

A round reads one update blob after another, each as large as the model (40 MB at 10M
parameters). glibc serves every allocation above its mmap threshold (at most 32 MiB, adjusted
dynamically) with a fresh ``mmap`` and unmaps it on free, so each blob's pages are faulted in
and zeroed by the kernel again: reading a 40 MB blob from the page cache ran at 2.5 GB/s that way
against 9-11 GB/s into memory the process already had (measured on the 2-core CI machine,
docs/benchmarks.md, "Round benchmark"). :func:`reuse_freed_memory` raises the thresholds so
that a freed blob's memory serves the next one; :func:`release_freed_memory` hands the free
memory back to the kernel once a round is done, so that an idle aggregator does not keep its
round's peak. Neither changes what any computation returns.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

__all__ = ["release_freed_memory", "reuse_freed_memory"]

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap and are reused after free (1 GiB: any blob a round
#: accepts by default; larger ones are mapped as before).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the heap's top is kept up to this much between rounds' trims.
TRIM_THRESHOLD = (1 << 31) - 1

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _libc() -> Any | None:
    if "libc" not in _state:
        lib = None
        try:
            name = ctypes.util.find_library("c")
            candidate = ctypes.CDLL(name) if name else None
            if candidate is not None and hasattr(candidate, "mallopt") and hasattr(candidate, "malloc_trim"):
                lib = candidate
        except OSError:  # pragma: no cover - no C library to load
            lib = None
        _state["libc"] = lib
    return _state["libc"]


def reuse_freed_memory() -> bool:
    """Keep freed large blocks for reuse (process-wide, idempotent). True if the allocator took
    the settings, False where it is not glibc's."""
    with _lock:
        if "tuned" not in _state:
            lib = _libc()
            _state["tuned"] = bool(lib is not None and lib.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                                   and lib.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
        return bool(_state["tuned"])


def release_freed_memory() -> bool:
    """Return the allocator's free memory to the kernel (``malloc_trim(0)``). True if any was."""
    lib = _libc()
    return bool(lib is not None and lib.malloc_trim(0))
