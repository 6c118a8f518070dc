"""fedchain.memory: the allocator settings a round uses (glibc: this machine's C library)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fedchain import memory


def _child(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(memory._libc() is None, reason="not glibc: the settings are a no-op there")
def test_after_reuse_a_freed_blob_serves_the_next_one_without_new_page_faults():
    # a child process: mallopt settings are process-wide
    code = """
import resource
from fedchain import memory
def faults(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        data = bytearray(40_000_000)
        data[::4096] = b"x" * len(data[::4096])
        del data
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
plain = faults(5)
assert memory.reuse_freed_memory() and memory.reuse_freed_memory()  # idempotent
faults(1)  # the first one faults its pages in
reused = faults(5)
print(plain, reused, memory.release_freed_memory())
"""
    plain, reused, released = _child(code).split()
    assert int(plain) > 5 * 9000  # 40 MB is ~9,800 pages, faulted in again for every mapped blob
    assert int(reused) < int(plain) / 10
    assert released == "True"  # the kept pages go back to the kernel when asked


@pytest.mark.skipif(memory._libc() is None, reason="not glibc: the settings are a no-op there")
def test_release_gives_the_kept_pages_back_so_an_idle_aggregator_does_not_keep_its_peak():
    code = """
from fedchain import memory
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) * 1024
memory.reuse_freed_memory()
data = bytearray(200_000_000)
data[::4096] = b"x" * len(data[::4096])
del data
kept = rss()
memory.release_freed_memory()
print(kept - rss())
"""
    assert int(_child(code)) > 150_000_000


@pytest.mark.skipif(memory._libc() is None, reason="not glibc: populate is a no-op there")
def test_populate_maps_a_fresh_buffers_pages_in_so_writing_it_faults_no_more():
    code = """
import resource
import numpy as np
from fedchain import memory
def write_faults(populate):
    a = np.empty(8 << 20, dtype=np.uint8)  # fresh pages (above glibc's mmap threshold)
    ok = memory.populate(a.ctypes.data, a.nbytes) if populate else None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a.fill(7)
    return ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
_, plain = write_faults(False)
ok, populated = write_faults(True)
print(plain, ok, populated)
"""
    plain, ok, populated = _child(code).split()
    if ok == "False":
        pytest.skip("the kernel has no MADV_POPULATE_WRITE (Linux < 5.14)")
    # 2,048 pages of 4 KiB: faulted in by the write (516 faults here, where the kernel maps several
    # pages per fault), or by the one populate call
    assert int(plain) > 100
    assert int(populated) * 10 < int(plain)


def test_populate_leaves_the_contents_and_handles_partial_and_empty_ranges():
    import numpy as np

    a = np.arange(3 << 20, dtype=np.float64)  # 24 MiB
    want = a.copy()
    memory.populate(a.ctypes.data, a.nbytes)
    memory.populate(a.ctypes.data + 100, 5000)  # a range holding no whole page, and one holding one
    memory.populate(a.ctypes.data + 1, 3)
    assert memory.populate(a.ctypes.data, 0) is False
    assert np.array_equal(a, want)
