"""fedchain.pools: one thread pool per purpose for the whole process, none inherited by a fork."""

from __future__ import annotations

import multiprocessing
import os

import threading

import pytest

from fedchain.pools import run_split, shared_pool, usable_cpus


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


def test_run_split_returns_each_parts_result_in_order_and_runs_the_first_on_the_caller():
    def part(i):
        return i * i, threading.get_ident()

    got = run_split("test-pools-split", 3, part, [(i,) for i in range(5)])
    assert [r for r, _ in got] == [0, 1, 4, 9, 16]
    assert got[0][1] == threading.get_ident()
    assert all(t != threading.get_ident() for _, t in got[1:])
    assert run_split("test-pools-split", 3, part, [(7,)]) == [(49, threading.get_ident())]
    assert run_split("test-pools-split", 3, part, []) == []


def test_run_split_waits_for_every_part_before_raising_a_parts_error():
    done = []
    release = threading.Event()

    def part(i):
        if i == 0:
            raise ValueError("part 0 failed")
        release.wait(0.2)  # still running when part 0 has already failed on the caller
        done.append(i)
        return i

    with pytest.raises(ValueError, match="part 0 failed"):
        run_split("test-pools-split-err", 3, part, [(0,), (1,), (2,)])
    assert sorted(done) == [1, 2]
