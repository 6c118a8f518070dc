"""fedchain.pools: one thread pool per purpose for the whole process, none inherited by a fork."""

from __future__ import annotations

import multiprocessing
import os

from fedchain.pools import shared_pool, usable_cpus


def test_a_name_gives_the_same_pool_every_time_and_another_name_another_pool():
    a = shared_pool("test-pools-a", 2)
    assert shared_pool("test-pools-a", 2) is a
    b = shared_pool("test-pools-b", 2)
    assert b is not a
    assert a.submit(lambda: 6 * 7).result(timeout=10) == 42


def _child_uses_its_own_pool(parent_pool_id: int) -> None:
    pool = shared_pool("test-pools-fork", 2)
    # the parent's pool object is forgotten (its threads did not survive the fork), and a new one runs
    os._exit(0 if id(pool) != parent_pool_id and pool.submit(lambda: 1).result(timeout=10) == 1 else 1)


def test_a_forked_child_starts_a_pool_of_its_own():
    pool = shared_pool("test-pools-fork", 2)
    assert pool.submit(lambda: 1).result(timeout=10) == 1  # the parent's threads exist now
    child = multiprocessing.get_context("fork").Process(target=_child_uses_its_own_pool, args=(id(pool),))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def test_usable_cpus_is_at_least_one():
    assert usable_cpus() >= 1
