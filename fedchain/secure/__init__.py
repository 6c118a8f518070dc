"""Secure aggregation for secure mode: Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning" (CCS 2017), double masking, keyed on-chain.

Pure functions, no I/O: bytes and arrays in, bytes and arrays out. docs/privacy.md is the
protocol description; the modules:

- :mod:`.keys`: X25519 key agreement, HKDF to per-(round, pair) seeds.
- :mod:`.prg`: ChaCha20 keystream -> mask words.
- :mod:`.masking`: a node's masked input; removing the masks from a sum.
- :mod:`.shamir`: t-of-n Shamir sharing over GF(2^521 - 1).
- :mod:`.shares`: share bundles (every share AEAD-encrypted to its holder) and opening them.
- :mod:`.unmasking`: what a survivor reveals for the on-chain set, the refusal rule, unmasking
  blobs, recovering the seeds, the range check of the sum.
- :mod:`.blob`: the masked update blob (fixed-point tensors + the share bundle).
- :mod:`.pipeline`: the two calls the integration makes: :func:`~.pipeline.node_masked_update`
  (node) and :func:`~.pipeline.unmask_round` (aggregator and ``verify``).
"""

from __future__ import annotations

from fedchain.errors import FedchainError

__all__ = ["PROTOCOL", "RevealRefused", "SecAggError", "UnmaskImpossible"]

#: Domain-separation prefix of every key derivation and every blob of this protocol version.
PROTOCOL = b"fedchain/secagg/v1"


class SecAggError(FedchainError):
    """A secure-aggregation step failed; ``reason`` is a machine-readable code for round reports."""

    http_status = 422

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class RevealRefused(SecAggError):
    """A survivor was asked to reveal a share that the on-chain set does not imply (or that would,
    together with what it revealed before, remove both masks of one node)."""


class UnmaskImpossible(SecAggError):
    """Fewer than t valid shares of a needed seed: the masks cannot be removed (the round expires)."""
