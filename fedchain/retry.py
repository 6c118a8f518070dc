"""Retry with exponential backoff for brief API or RPC outages, with a clear message each time."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import httpx

from fedchain.errors import RpcUnavailable

T = TypeVar("T")


class TransientHTTPError(Exception):
    """A 5xx answer or a 429: worth trying again."""


RETRYABLE: tuple[type[BaseException], ...] = (RpcUnavailable, httpx.TransportError, TransientHTTPError)


#: How long a node keeps retrying an outage by default (seconds); ``--retry-seconds`` sets it.
DEFAULT_RETRY_SECONDS = 300.0


def with_retry(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int | None = None,
    timeout: float | None = None,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn``; on a transient failure wait 0.5, 1, 2, 4, 8, 8... seconds and try again, for
    at most ``attempts`` tries and/or ``timeout`` seconds (default: 8 tries). Each retry is logged."""
    if attempts is None and timeout is None:
        attempts = 8
    delay = base_delay
    end = None if timeout is None else clock() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except RETRYABLE as exc:
            out_of_tries = attempts is not None and attempt >= attempts
            out_of_time = end is not None and clock() + delay > end
            if out_of_tries or out_of_time:
                raise
            detail = str(exc) or type(exc).__name__
            left = f"attempt {attempt}/{attempts}" if attempts is not None else f"giving up in {max(0.0, end - clock()):.0f} s"
            log(f"{what} failed ({detail}); retrying in {delay:.1f} s ({left})")
            sleep(delay)
            delay = min(max_delay, delay * 2)
