"""Ethereum addresses in their EIP-55 checksummed form, computed directly.

``eth_utils.to_checksum_address`` spends about 0.27 ms per call validating and converting its
input, against 9 us for the keccak the checksum needs. The canonical header of every update blob
names its sender and contract in this form, so a round's per-blob checks (and a node's encoding,
and each commitment fold) paid it over and over. This module computes the same string for the
common input, a ``0x``-prefixed string of 40 hex digits in any case, and hands anything else
(bytes, no prefix, a wrong length, a non-hex character) to eth_utils, so that every input gets
exactly eth_utils' answer or its error (tests/unit/test_address.py checks both).
"""

from __future__ import annotations

import re
from typing import Any

from eth_hash.auto import keccak

_PLAIN = re.compile(r"0x[0-9a-fA-F]{40}")


def to_checksum_address(value: Any) -> str:
    """The EIP-55 form of ``value``: a drop-in for ``eth_utils.to_checksum_address``."""
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        low = value[2:].lower()
        digest = keccak(low.encode("ascii")).hex()
        # EIP-55: a letter is upper case where the nibble of the hash at its position is >= 8.
        return "0x" + "".join(c.upper() if d in "89abcdef" else c for c, d in zip(low, digest))
    from eth_utils import to_checksum_address as slow

    return slow(value)
