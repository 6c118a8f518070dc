"""Start many node processes on one machine quickly: fork them from a warmed-up parent.

A fresh ``python -m node`` spends about 1.7 CPU-seconds importing torch and web3 and 1.1 on
torch's first training step. Ten of them on two cores are half a minute of start-up. Forked from a
parent that has paid those costs once, each child starts in a fraction of a second. A forked node
is still a process of its own: its own address space, key, data and log, talking to the chain and
the API over HTTP only, exactly like one started with ``python -m node``.

Fork before the parent starts threads (the API server, the index sync): a child gets only the
forking thread, and a lock another thread held at that moment would stay held in the child. The
parent trains with one torch thread while it warms up, so no OpenMP pool exists to be inherited
half-alive; a forked child keeps that one thread, which is what N nodes sharing few cores want.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork after imports is unsafe


def single_threaded(grace: float = 2.0) -> bool:
    """True once this process runs no other thread, waiting up to ``grace`` seconds for ending
    ones (rich tells a spinner's refresh thread to stop but does not join it)."""
    end = time.monotonic() + grace
    while threading.active_count() > 1 and time.monotonic() < end:
        time.sleep(0.01)
    return threading.active_count() == 1


def warm_up(task: Any, *, shard: int = 0, num_shards: int = 1, seed: int = 0) -> int:
    """Import what a node imports and train a throwaway model one epoch, in this process, with one
    torch thread, which the children forked next inherit. Returns the thread count before, for
    the parent to restore once it has forked them."""
    import torch

    import node.watch  # noqa: F401 - the imports are the point
    from node.participant import train_throwaway

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    params = task.default_params()
    train_throwaway(task, params, task.node_data(shard, num_shards, seed, params))
    return before


def _describe(t: threading.Thread) -> str:
    target = getattr(t, "_target", None)
    where = getattr(target, "__qualname__", None) or type(t).__qualname__
    return f"{t.name} ({type(t).__module__}.{where})"


class ForkedNode:
    """A forked node process, with the part of ``subprocess.Popen`` that the demo uses."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() >= end:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_node(argv: list[str], *, log_path: Path, env: dict[str, str], cwd: Path,
              close_fds: tuple[int, ...] = ()) -> ForkedNode:
    """Fork a child that runs ``node.participant.main(argv)`` with stdout and stderr to
    ``log_path``, the environment ``env`` and the working folder ``cwd``; it never returns into
    the parent's code (``os._exit``)."""
    if not single_threaded():
        others = ", ".join(_describe(t) for t in threading.enumerate() if t is not threading.current_thread())
        raise RuntimeError(f"fork_node needs a single-threaded parent: fork the nodes before starting threads "
                           f"(running: {others})")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedNode(pid, argv)
    code = 1
    try:  # the child
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from node.participant import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must never run the parent's code on
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
