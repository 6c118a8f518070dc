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


def with_retry(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient failure wait 0.5, 1, 2, 4, 8, 8... seconds and try again."""
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            detail = str(exc) or type(exc).__name__
            log(f"{what} failed ({detail}); retrying in {delay:.1f} s (attempt {attempt}/{attempts})")
            sleep(delay)
            delay = min(max_delay, delay * 2)
    raise AssertionError("unreachable")
