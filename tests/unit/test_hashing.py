"""Commitment hash: the construction spelled out with hashlib, known answers, validation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import FedchainError, InvalidBlob
from fedchain.hashing import (
    CHUNK_SIZE,
    bytes32_to_hash,
    commitment,
    hash_to_bytes32,
    is_hash,
    merkle_root,
    normalize_hash,
)

MiB = 1 << 20


def pattern(n: int) -> bytes:
    """Test-vector data (also in docs/protocol.md): byte i is i mod 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def leaf(chunk: bytes) -> bytes:
    return sha(b"\x00", chunk)


def inner(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01", left, right)


def root(n: int, tree_root: bytes) -> str:
    return "0x" + sha(b"\x02", n.to_bytes(8, "big"), tree_root).hex()


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + MiB] for i in range(0, len(data), MiB)]


# --- the construction, by hand ------------------------------------------------------------------
def test_chunk_size_is_one_mebibyte():
    assert CHUNK_SIZE == 1048576


def test_empty_blob_is_one_empty_leaf():
    assert commitment(b"") == root(0, leaf(b""))


def test_one_byte_blob_is_a_single_leaf():
    assert commitment(b"\x00") == root(1, leaf(b"\x00"))


def test_exactly_one_chunk_is_a_single_leaf():
    data = pattern(MiB)
    assert commitment(data) == root(MiB, leaf(data))


def test_one_chunk_plus_one_byte_has_two_leaves():
    data = pattern(MiB + 1)
    c0, c1 = chunks(data)
    assert len(c1) == 1
    assert commitment(data) == root(MiB + 1, inner(leaf(c0), leaf(c1)))


def test_three_leaves_promote_the_odd_one_unchanged():
    data = pattern(2 * MiB + 5)
    l0, l1, l2 = (leaf(c) for c in chunks(data))
    assert commitment(data) == root(len(data), inner(inner(l0, l1), l2))


def test_four_leaves_make_a_full_tree():
    data = pattern(3 * MiB + 5)
    l0, l1, l2, l3 = (leaf(c) for c in chunks(data))
    assert commitment(data) == root(len(data), inner(inner(l0, l1), inner(l2, l3)))


def test_five_leaves_promote_at_two_levels():
    data = pattern(4 * MiB + 1)
    l0, l1, l2, l3, l4 = (leaf(c) for c in chunks(data))
    assert commitment(data) == root(len(data), inner(inner(inner(l0, l1), inner(l2, l3)), l4))


# --- known answers (the same table is in docs/protocol.md) ---------------------------------------
KNOWN = [
    (0, "0xc0e50f0d90d6e2fea1e6f53d4f758ed5fc9035a399a8eb215c29c6ff3ea05425"),
    (1, "0xee8acb9cb20eaf4b807ef586e552774d803cc3dd837bf26e9f509500cc2604bd"),
    (3, "0x8025778eb3490f31db4a8eb0a5ae3a7365b525f96e7d02bef27e26d5c707342e"),
    (MiB - 1, "0x9adcea794ae90d3e310260617c83a0d201ee2e49622ddf5fa3a5cfe0ada5f4ab"),
    (MiB, "0x40efa1031d506bb2134825bb62b04d0790500eebef896ef18cb6326dffb29526"),
    (MiB + 1, "0xabeb509e284d23422e12acfe9468c0123e36eafb10115c7ec66f3bbd88cb0446"),
    (2 * MiB + 5, "0x6d0a49e2b86fa70928d7c7db8bf2e21c8e700359e6547c6240f051c44205e852"),
    (3 * MiB + 5, "0x1f0fb20f8ebbfff9e54cd8e92284bc8bb15b84a925511b90612b99af04dd5f77"),
    (4 * MiB + 1, "0x505c3f1e5c4daaa803952458030919b32ba64742d10d638733ef05d1b5135703"),
]


@pytest.mark.parametrize("n,expected", KNOWN, ids=[str(n) for n, _ in KNOWN])
def test_known_answer_vectors(n, expected):
    assert commitment(pattern(n)) == expected


def test_known_answer_for_abc():
    assert commitment(b"abc") == "0x5c170547d40533fb44a0c4874b2977285d519c9e8129f7733c364d97cf2cabd6"


# --- properties ---------------------------------------------------------------------------------
def test_commitment_is_deterministic_and_accepts_buffers():
    data = pattern(MiB + 17)
    h = commitment(data)
    assert commitment(bytes(data)) == h
    assert commitment(bytearray(data)) == h
    assert commitment(memoryview(data)) == h


def test_output_is_canonical_lowercase_hex():
    h = commitment(b"x")
    assert h.startswith("0x") and len(h) == 66 and h == h.lower()
    assert normalize_hash(h) == h


def test_threaded_and_sequential_hashing_agree():
    data = pattern(20 * MiB + 3)
    assert commitment(data, workers=1) == commitment(data, workers=4) == commitment(data)


@pytest.mark.parametrize("size", [4 * MiB, 5 * MiB + 1, 7 * MiB - 1])
def test_threads_hash_contiguous_groups_of_leaves_in_order(size):
    data = pattern(size)
    level = [leaf(c) for c in chunks(data)]
    while len(level) > 1:  # the documented tree, built by hand
        level = [inner(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)] + level[len(level) - len(level) % 2:]
    assert merkle_root(data, workers=3) == merkle_root(data, workers=2) == merkle_root(data, workers=1) == level[0]


@pytest.mark.parametrize("size,workers,want", [
    (4 * MiB + 500, 2, [2 * MiB, 2 * MiB + 500]),  # a short last leaf counts for its size (was 3 + 2 leaves)
    (4 * MiB, 2, [2 * MiB, 2 * MiB]),
    (4 * MiB - 1, 3, [MiB, 2 * MiB, MiB - 1]),
    (5 * MiB, 8, [MiB] * 5),  # more threads than leaves: one leaf each, no empty group
    (20 * MiB + 3, 4, [5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB + 3]),
])
def test_threads_get_groups_of_about_equal_bytes(monkeypatch, size, workers, want):
    import fedchain.hashing as H

    seen = []
    real = H.run_split

    def spy(name, max_workers, fn, parts):
        seen.append([sum(min(MiB, size - s) for s in group) for (group,) in parts])
        return real(name, max_workers, fn, parts)

    monkeypatch.setattr(H, "run_split", spy)
    data = pattern(size)
    assert H.merkle_root(data, workers=workers) == H.merkle_root(data, workers=1)
    assert seen == [want]


def test_a_forked_child_hashes_with_threads_of_its_own():
    import multiprocessing

    data = pattern(8 * MiB)
    want = commitment(data)  # the parent's pool exists now; its threads do not survive a fork
    child = multiprocessing.get_context("fork").Process(target=_hash_and_exit, args=(data, want))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung on the parent's thread pool")
    assert child.exitcode == 0


def _hash_and_exit(data, want):
    import os

    os._exit(0 if commitment(data) == want else 1)


def test_length_is_mixed_into_the_root():
    # Same tree root, different claimed length: the commitment must differ.
    data = pattern(10)
    tree = merkle_root(data)
    assert commitment(data) == root(10, tree)
    assert commitment(data) != root(11, tree)


def test_trailing_zero_byte_changes_the_hash():
    data = pattern(MiB)
    assert commitment(data) != commitment(data + b"\x00")
    assert commitment(b"") != commitment(b"\x00")


BASE = pattern(2 * MiB + 3)


@settings(max_examples=40, deadline=None)
@given(index=st.integers(min_value=0, max_value=len(BASE) - 1), bit=st.integers(min_value=0, max_value=7))
def test_any_bit_flip_changes_the_hash(index, bit):
    flipped = bytearray(BASE)
    flipped[index] ^= 1 << bit
    assert commitment(bytes(flipped)) != commitment(BASE)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_small_blobs_match_the_single_leaf_formula(data):
    assert commitment(data) == root(len(data), leaf(data))


# --- hash strings ---------------------------------------------------------------------------------
H = "0x" + "ab" * 32


def test_normalize_accepts_uppercase_and_missing_prefix():
    assert normalize_hash("0X" + "AB" * 32) == H
    assert normalize_hash("AB" * 32) == H
    assert normalize_hash(H) == H


@pytest.mark.parametrize(
    "bad",
    ["", "0x", "0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32, " " + H, H + "\n", "0x0x" + "ab" * 31, None, 12, b"\x00" * 32],
)
def test_normalize_rejects_non_hashes_with_bad_hash_reason(bad):
    assert not is_hash(bad)
    with pytest.raises(InvalidBlob) as exc:
        normalize_hash(bad)
    assert exc.value.reason == "bad_hash"
    assert isinstance(exc.value, FedchainError)


def test_is_hash_accepts_what_normalize_accepts():
    assert is_hash(H) and is_hash(H.upper().replace("0X", "0x")) and is_hash("ab" * 32)


def test_bytes32_round_trip():
    raw = hash_to_bytes32("0X" + "AB" * 32)
    assert raw == b"\xab" * 32
    assert bytes32_to_hash(raw) == H
    assert bytes32_to_hash(bytearray(raw)) == H


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 33, 32, "ab" * 32])
def test_bytes32_to_hash_rejects_wrong_length_or_type(bad):
    with pytest.raises(InvalidBlob) as exc:
        bytes32_to_hash(bad)
    assert exc.value.reason == "bad_hash"
