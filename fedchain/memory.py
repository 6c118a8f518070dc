"""The C allocator's settings for rounds that stream large blobs (glibc only; elsewhere a no-op).

A round reads one update blob after another, each as large as the model (40 MB at 10M
parameters). glibc serves every allocation above its mmap threshold (at most 32 MiB, adjusted
dynamically) with a fresh ``mmap`` and unmaps it on free, so each blob's pages are faulted in
and zeroed by the kernel again: reading a 40 MB blob from the page cache ran at 2.5 GB/s that way
against 9-11 GB/s into memory the process already had (measured on the 2-core CI machine,
docs/benchmarks.md, "Round benchmark"). :func:`reuse_freed_memory` raises the thresholds so
that a freed blob's memory serves the next one; :func:`release_freed_memory` hands the free
memory back to the kernel once a round is done, so that an idle aggregator does not keep its
round's peak. :func:`populate` maps a fresh buffer's pages in with one call per span instead of one
page fault per 4 KiB page. None of them changes what any computation returns.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

__all__ = ["populate", "release_freed_memory", "reuse_freed_memory"]

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# madvise(2) advice (Linux 5.14+): fault the range in, writable, as a write would
_MADV_POPULATE_WRITE = 23
_PAGE = 4096
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
                if hasattr(lib, "madvise"):
                    lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                    lib.madvise.restype = ctypes.c_int
        except OSError:  # pragma: no cover - no C library to load
            lib = None
        _state["libc"] = lib
    return _state["libc"]


def populate(address: int, nbytes: int) -> bool:
    """Map in, writable, the whole pages of ``[address, address + nbytes)`` (a buffer this process
    allocated and is about to write, such as a new ``numpy`` array's ``.ctypes.data`` and
    ``.nbytes``), with ``madvise(MADV_POPULATE_WRITE)``: one system call instead of one page fault
    per page (4 MiB took 0.85 ms that way against 1.1-3 ms of faults on the 2-core CI machine; two
    threads, each populating half, were no faster). Contents are unchanged. False where the kernel
    (before 5.14) or the C library cannot: the pages then fault in on first write, as without it."""
    lib = _libc()
    if lib is None or not hasattr(lib, "madvise") or _state.get("populate") is False or nbytes <= 0:
        return False
    start = (address + _PAGE - 1) // _PAGE * _PAGE
    end = (address + nbytes) // _PAGE * _PAGE
    if end <= start:
        return True
    ok = lib.madvise(start, end - start, _MADV_POPULATE_WRITE) == 0
    if not ok:
        _state["populate"] = False  # refused (EINVAL before Linux 5.14): do not ask again
    return ok


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
