"""Process-wide thread pools for the pure compute helpers (hashing, the streaming merge).

numpy's loops and hashlib on large inputs release the GIL, so a few threads use every core. A pool
per call spent more on starting threads than small inputs take, hence one pool per purpose for the
whole process, started on first use. A forked child has none of its parent's threads (the demo
forks its nodes from a warmed-up parent), so every pool is forgotten in the child, which starts its
own when it needs one. Which pool runs a job never changes its result: callers split their work
into fixed pieces first, and :func:`run_split` runs the pieces, the first on the calling thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

_T = TypeVar("_T")

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
os.register_at_fork(after_in_child=_pools.clear)


def shared_pool(name: str, max_workers: int) -> ThreadPoolExecutor:
    """The process's pool called ``name`` (its threads are named after it), started with
    ``max_workers`` threads on first use."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        return pool


def run_split(name: str, max_workers: int, fn: Callable[..., _T], parts: Sequence[tuple[Any, ...]]) -> list[_T]:
    """``[fn(*args) for args in parts]``, the parts run at once: all but the first on the pool
    ``name``, the first on the calling thread (which would otherwise only wait). Results in the
    order of ``parts``; the first exception raised is re-raised once every part is done."""
    if len(parts) <= 1:
        return [fn(*args) for args in parts]
    pool = shared_pool(name, max_workers)
    jobs = [pool.submit(fn, *args) for args in parts[1:]]
    try:
        first = fn(*parts[0])
    finally:
        done = [job.exception() for job in jobs]  # every part ends before the caller's buffers can go
    for exc in done:
        if exc is not None:
            raise exc
    return [first] + [job.result() for job in jobs]


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
