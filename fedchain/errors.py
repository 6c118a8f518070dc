"""One error hierarchy for fedchain.

Every error a user can meet is a :class:`FedchainError`: it carries a one-line message and, where
there is one, a ``hint`` naming the fix. The CLI prints ``error: <message>`` (and ``hint: ...``)
and exits non-zero; the API maps errors to 4xx responses with the reason. Never a traceback.
"""

from __future__ import annotations

from typing import Any


class FedchainError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; ``http_status`` what the API answers."""

    exit_code: int = 2
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- configuration -----------------------------------------------------------------------------
class ConfigError(FedchainError):
    """Bad or missing configuration: settings, deployment file, key, task name."""


# --- blobs, codec, validation ------------------------------------------------------------------
class BlobError(FedchainError):
    """A blob could not be stored or read."""


class BlobNotFound(BlobError):
    http_status = 404


class HashMismatch(BlobError):
    """Bytes do not hash to the name they were stored or committed under."""

    http_status = 400


class BlobTooLarge(BlobError):
    http_status = 413


class InvalidBlob(BlobError):
    """Bytes are not a valid canonical tensor file or JSON document (truncated, garbage, NaN...).

    ``reason`` is a short machine-readable code (``malformed``, ``non_finite``, ``wrong_names``,
    ``wrong_shape``, ``wrong_dtype``, ``too_large``...), used in round reports and API errors.
    """

    http_status = 422

    def __init__(self, message: str, *, reason: str = "malformed", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


# --- authentication ------------------------------------------------------------------------------
class AuthError(FedchainError):
    """Upload not signed, signed by a non-node, or signed for another round/chain/contract."""

    http_status = 401


class Forbidden(AuthError):
    http_status = 403


class Conflict(FedchainError):
    """Duplicate upload, or a round in the wrong state for the request."""

    http_status = 409


class NotFound(FedchainError):
    http_status = 404


# --- chain ---------------------------------------------------------------------------------------
class ChainError(FedchainError):
    """Anything that went wrong talking to the chain."""

    http_status = 502


class RpcUnavailable(ChainError):
    """The JSON-RPC endpoint does not answer."""

    http_status = 503

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__(
            f"cannot reach the chain at {url}" + (f" ({detail})" if detail else ""),
            hint="start a local chain with `fedchain chain`, or pass --rpc-url / set FEDCHAIN_RPC_URL",
        )
        self.url = url


class ContractRevert(ChainError):
    """A contract call reverted. ``name`` is the custom error's name, ``args`` its decoded arguments."""

    http_status = 409

    def __init__(self, name: str, args: dict[str, Any] | None = None, *, function: str = "") -> None:
        self.name = name
        self.args_dict = dict(args or {})
        self.function = function
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in self.args_dict.items())
        where = f"{function}: " if function else ""
        super().__init__(f"{where}contract reverted with {name}({rendered})")


def _render(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)
