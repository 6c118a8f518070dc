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
