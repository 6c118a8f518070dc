"""Error helpers of the API: reason codes, and the one error the service itself adds (503)."""

from __future__ import annotations

import re

from fedchain.errors import FedchainError


class ServiceUnavailable(FedchainError):
    """The aggregator cannot serve this right now (a base model missing from its store, a corrupted
    blob): its problem, not the client's."""

    http_status = 503


def with_reason(exc: FedchainError, reason: str) -> FedchainError:
    """Attach a machine-readable reason code (the ``reason`` field of the error body)."""
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def error_reason(exc: FedchainError) -> str:
    """The error's reason code: its own ``reason``, a revert's name, else its class in snake_case."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    name = getattr(exc, "name", None)  # ContractRevert
    if isinstance(name, str) and name:
        return name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
