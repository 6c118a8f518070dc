"""The mask PRG: ChaCha20 keystream (RFC 7539 block function, 32-byte key, zero nonce and zero
initial counter) read as little-endian unsigned words.

``expand(seed, n)`` is the first 4n (or 8n) bytes of the keystream of key ``seed``, i.e. the
ChaCha20 encryption of zeros. Each seed is used for one stream only (seeds are per round and per
pair, :mod:`.keys`), so the fixed nonce is safe. Vectorised: one cipher call, one ``frombuffer``.
"""

from __future__ import annotations

import numpy as np

from fedchain.secure import SecAggError

__all__ = ["expand"]

_NONCE = bytes(16)  # cryptography's ChaCha20 nonce: 4-byte little-endian counter || 12-byte nonce


def expand(seed: bytes, n: int, modulus_bits: int = 32) -> np.ndarray:
    """``n`` pseudorandom words (uint32 or uint64) from a 32-byte seed."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise SecAggError("a PRG seed is 32 bytes", reason="malformed")
    if modulus_bits not in (32, 64):
        raise SecAggError(f"modulus_bits must be 32 or 64, got {modulus_bits}", reason="malformed")
    width = modulus_bits // 8
    if n <= 0:
        return np.zeros(0, dtype=np.uint32 if width == 4 else np.uint64)
    enc = Cipher(algorithms.ChaCha20(bytes(seed), _NONCE), mode=None).encryptor()
    stream = enc.update(bytes(n * width))
    return np.frombuffer(stream, dtype="<u4" if width == 4 else "<u8").astype(np.uint32 if width == 4 else np.uint64)
