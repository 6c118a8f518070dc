"""t-of-n Shamir secret sharing (Shamir, "How to share a secret", CACM 1979) over GF(p),
p = 2^521 - 1 (a Mersenne prime), so a 32-byte secret is one field element.

A secret s in [0, 2^256) is the constant term of a random polynomial f of degree t - 1; holder i
(x = i, 1-based, i <= n) gets y = f(i). Any t shares give s by Lagrange interpolation at 0; t - 1
shares are consistent with every secret (perfect hiding). Shares are 66 bytes, big-endian.

Deterministic given the ``randomness`` bytes passed in: coefficient j is
int(SHAKE-256("fedchain/shamir/v1" || randomness)[80 (j-1) : 80 j]) mod p (80 bytes per coefficient,
bias < 2^-119). The randomness must be secret and never reused for another secret.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from fedchain.secure import SecAggError

__all__ = ["PRIME", "SHARE_BYTES", "decode_share", "encode_share", "reconstruct", "reconstruct_secret", "split"]

PRIME = (1 << 521) - 1
SHARE_BYTES = 66
SECRET_BYTES = 32
_COEFF_BYTES = 80


def _coefficients(randomness: bytes, count: int) -> list[int]:
    if not isinstance(randomness, (bytes, bytearray)) or len(randomness) < 32:
        raise SecAggError("Shamir randomness is at least 32 bytes", reason="malformed")
    stream = hashlib.shake_256(b"fedchain/shamir/v1" + bytes(randomness)).digest(max(1, count) * _COEFF_BYTES)
    return [int.from_bytes(stream[i * _COEFF_BYTES : (i + 1) * _COEFF_BYTES], "big") % PRIME for i in range(count)]


def split(secret: bytes, threshold: int, n: int, randomness: bytes) -> list[int]:
    """The n shares y_1..y_n (holder i gets f(i)) of a 32-byte ``secret``, threshold t."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_BYTES:
        raise SecAggError("a shared secret is 32 bytes", reason="malformed")
    if not (1 <= threshold <= n):
        raise SecAggError(f"threshold {threshold} is not in [1, n = {n}]", reason="bad_threshold")
    coeffs = [int.from_bytes(secret, "big")] + _coefficients(randomness, threshold - 1)
    shares = []
    for x in range(1, n + 1):
        y = 0
        for c in reversed(coeffs):  # Horner
            y = (y * x + c) % PRIME
        shares.append(y)
    return shares


def reconstruct(points: Iterable[tuple[int, int]], threshold: int) -> int:
    """f(0) from at least ``threshold`` points (x, y) with distinct x in [1, ...]; uses the first
    ``threshold`` by x. Raises SecAggError ``too_few_shares`` with fewer."""
    pts = sorted({int(x): int(y) for x, y in points}.items())
    if len(pts) < threshold:
        raise SecAggError(f"{len(pts)} shares, {threshold} needed", reason="too_few_shares")
    pts = pts[:threshold]
    secret = 0
    for i, (xi, yi) in enumerate(pts):
        num, den = 1, 1
        for j, (xj, _) in enumerate(pts):
            if i != j:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    return secret


def reconstruct_secret(points: Iterable[tuple[int, int]], threshold: int) -> bytes:
    """The 32-byte secret from ``threshold`` shares. A value >= 2^256 (what wrong or too few shares
    give, with probability 1 - 2^-265) raises SecAggError ``bad_shares``."""
    value = reconstruct(points, threshold)
    if value >> (8 * SECRET_BYTES):
        raise SecAggError("the shares do not reconstruct a 32-byte secret", reason="bad_shares")
    return value.to_bytes(SECRET_BYTES, "big")


def consistent(points: Sequence[tuple[int, int]], threshold: int) -> bool:
    """True if all points lie on one polynomial of degree < threshold."""
    pts = sorted({int(x): int(y) for x, y in points}.items())
    if len(pts) <= threshold:
        return True
    base = pts[:threshold]
    for x, y in pts[threshold:]:
        acc = 0
        for i, (xi, yi) in enumerate(base):
            num, den = 1, 1
            for j, (xj, _) in enumerate(base):
                if i != j:
                    num = num * (x - xj) % PRIME
                    den = den * (xi - xj) % PRIME
            acc = (acc + yi * num * pow(den, -1, PRIME)) % PRIME
        if acc != y:
            return False
    return True


def encode_share(y: int) -> bytes:
    return int(y).to_bytes(SHARE_BYTES, "big")


def decode_share(data: bytes) -> int:
    if len(data) != SHARE_BYTES:
        raise SecAggError("a share is 66 bytes", reason="malformed")
    y = int.from_bytes(data, "big")
    if y >= PRIME:
        raise SecAggError("a share is not a field element", reason="malformed")
    return y


__all__.append("consistent")
