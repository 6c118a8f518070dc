"""Moved to :mod:`fedchain.retry` (shared by the node, ``verify`` and the CLI)."""

from fedchain.retry import RETRYABLE, TransientHTTPError, with_retry

__all__ = ["RETRYABLE", "TransientHTTPError", "with_retry"]
