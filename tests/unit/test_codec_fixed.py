"""Fixed-point codec (secure mode): config, stochastic rounding, canonical U32/U64 files, and the
sum property: encoded inputs sum (mod 2^M) to the sum of the clipped inputs within n / 2^k."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.codec import (
    FixedPointConfig,
    UpdateIdentity,
    decode_fixed,
    decode_int_tensors,
    decode_tensors,
    dequantize,
    encode_fixed,
    encode_int_tensors,
    encode_tensors,
    fixed_to_signed,
    quantize,
    rounded_l2_bound,
    rounding_generator,
    sum_fixed,
)
from fedchain.errors import ConfigError, InvalidBlob
from fedchain.privacy.clipping import clip_l2

IDENT = UpdateIdentity(31337, "0x" + "11" * 20, 4, "0x" + "22" * 20)
SEED = b"s" * 32


def test_config_json_round_trip_and_validation():
    c = FixedPointConfig(clip=2.0, scale_bits=12, modulus_bits=64)
    assert FixedPointConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.to_dict() == {"clip": 2.0, "modulus_bits": 64, "scale_bits": 12}
    assert c.dtype == np.uint64 and c.dtype_name == "U64" and c.scale == 4096.0
    for bad in [dict(clip=0.0, scale_bits=1), dict(clip=math.inf, scale_bits=1), dict(clip=1.0, scale_bits=-1),
                dict(clip=1.0, scale_bits=8, modulus_bits=16), dict(clip=1.0, scale_bits=True)]:
        with pytest.raises(ConfigError):
            FixedPointConfig(**bad)
    with pytest.raises(ConfigError, match="does not fit"):
        FixedPointConfig(clip=1.0, scale_bits=31)  # floor(2^31) + 1 > 2^31 - 1
    with pytest.raises(ConfigError):
        FixedPointConfig.from_dict({"clip": 1.0, "scale_bits": 8})


def test_max_nodes_is_the_headroom_condition():
    c = FixedPointConfig(clip=1.0, scale_bits=16)
    n = c.max_nodes()
    assert n * (2**16 + 1) < 2**31 <= (n + 1) * (2**16 + 1)
    assert c.max_nodes(noise_bound=2**30) < n


def test_quantize_is_deterministic_given_the_seed_and_unbiased():
    c = FixedPointConfig(clip=100.0, scale_bits=4)
    x = {"a": np.full(20000, 0.3 / 16 * 16 + 0.01)}  # 0.31 * 16 = 4.96: rounds to 4 or 5
    q1, q2 = quantize(x, c, SEED), quantize(x, c, SEED)
    assert np.array_equal(q1["a"], q2["a"])
    assert not np.array_equal(q1["a"], quantize(x, c, b"t" * 32)["a"])
    v = fixed_to_signed(q1["a"])
    assert set(np.unique(v)) == {4, 5}
    assert abs(v.mean() - 0.31 * 16) < 0.02  # E[q] = x * 2^k


def test_rounding_generator_is_pcg64_from_hkdf():
    g = rounding_generator(SEED)
    assert isinstance(g.bit_generator, np.random.PCG64)
    assert np.array_equal(g.random(5), rounding_generator(SEED).random(5))
    assert not np.array_equal(rounding_generator(SEED, b"noise").random(5), rounding_generator(SEED).random(5))
    with pytest.raises(ValueError):
        rounding_generator(b"short")


def test_quantize_refuses_unclipped_and_non_finite_inputs():
    c = FixedPointConfig(clip=1.0, scale_bits=8)
    with pytest.raises(InvalidBlob) as e:
        quantize({"a": np.array([0.8, 0.8])}, c, SEED)
    assert e.value.reason == "out_of_range"
    with pytest.raises(InvalidBlob) as e:
        quantize({"a": np.array([np.nan])}, c, SEED)
    assert e.value.reason == "non_finite"


def test_conditional_rounding_meets_its_l2_bound():
    c = FixedPointConfig(clip=1.0, scale_bits=3)  # coarse: rounding matters
    rng = np.random.default_rng(1)
    for i in range(20):
        x, _ = clip_l2({"a": rng.normal(size=400)}, 1.0)
        x = {"a": x["a"] / np.linalg.norm(x["a"])}  # norm exactly ~C
        x, _ = clip_l2(x, 1.0)
        q = fixed_to_signed(quantize(x, c, bytes([i]) * 32)["a"])
        assert float(np.sum(q.astype(np.float64) ** 2)) <= rounded_l2_bound(8.0, 400) ** 2


def test_encode_decode_round_trip_exact_bytes_and_identity():
    c = FixedPointConfig(clip=1.0, scale_bits=16)
    q = quantize({"w": np.array([[0.1, -0.2]]), "b": np.array([-0.5])}, c, SEED)
    blob = encode_fixed(q, c)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    assert list(header) == ["b", "w"] and header["w"] == {"data_offsets": [4, 12], "dtype": "U32", "shape": [1, 2]}
    assert (8 + n) % 8 == 0 and len(blob) == 8 + n + 12
    out = decode_fixed(blob, c, expected={"w": (1, 2), "b": (1,)})
    assert all(np.array_equal(out[k], q[k]) and out[k].dtype == np.uint32 for k in q)
    assert fixed_to_signed(out["b"])[0] == -(2**15)
    assert encode_fixed(out, c) == blob
    upd = encode_fixed(q, c, identity=IDENT)
    assert np.array_equal(decode_fixed(upd, c, identity=IDENT)["w"], q["w"])
    other = UpdateIdentity(31337, "0x" + "11" * 20, 5, "0x" + "22" * 20)
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(upd, c, identity=other)
    assert e.value.reason == "not_own_update"
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(upd, c)
    assert e.value.reason == "malformed"


def test_u64_round_trip():
    c = FixedPointConfig(clip=1.0, scale_bits=40, modulus_bits=64)
    q = quantize({"a": np.array([-0.75, 0.5])}, c, SEED)
    assert q["a"].dtype == np.uint64
    out = decode_fixed(encode_fixed(q, c), c)
    assert list(fixed_to_signed(out["a"], 64)) == [-(3 << 38), 1 << 39]


def test_float_and_fixed_decoders_reject_each_other():
    c = FixedPointConfig(clip=1.0, scale_bits=8)
    fixed = encode_fixed({"a": np.zeros(3, np.uint32)}, c)
    with pytest.raises(InvalidBlob) as e:
        decode_tensors(fixed)
    assert e.value.reason == "wrong_dtype"
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(encode_tensors({"a": np.zeros(3)}), c)
    assert e.value.reason == "wrong_dtype"
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(fixed, FixedPointConfig(clip=1.0, scale_bits=8, modulus_bits=64))
    assert e.value.reason == "wrong_dtype"
    with pytest.raises(InvalidBlob) as e:
        encode_fixed({"a": np.zeros(3, np.int32)}, c)
    assert e.value.reason == "wrong_dtype"


def test_fixed_decoder_enforces_canonical_form_and_spec():
    c = FixedPointConfig(clip=1.0, scale_bits=8)
    blob = encode_fixed({"a": np.arange(3, dtype=np.uint32), "b": np.arange(2, dtype=np.uint32)}, c)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    spaced = json.dumps(header, sort_keys=True).encode()
    spaced += b" " * (-len(spaced) % 8)
    with pytest.raises(InvalidBlob, match="not canonical"):
        decode_fixed(len(spaced).to_bytes(8, "little") + spaced + blob[8 + n :], c)
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(blob[:-1], c)
    assert e.value.reason == "malformed"
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(blob, c, expected={"a": (3,), "b": (3,)})
    assert e.value.reason == "wrong_shape"
    with pytest.raises(InvalidBlob) as e:
        decode_fixed(blob, c, expected={"a": (3,)})
    assert e.value.reason == "wrong_names"


def test_mixed_dtype_files_and_extras():
    blob = encode_int_tensors({"m": np.zeros(2, np.uint32), "x:extra": np.zeros((2, 2), np.uint8)})
    arrays, meta = decode_int_tensors(blob, dtypes={"*": "U32", "x:extra": "U8"}, expected={"m": (2,)}, extras=("x:extra",))
    assert meta is None and arrays["x:extra"].dtype == np.uint8 and arrays["m"].dtype == np.uint32
    with pytest.raises(InvalidBlob) as e:
        decode_int_tensors(blob, dtypes="U32")
    assert e.value.reason == "wrong_dtype"


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 12),
    dim=st.integers(1, 40),
    scale_bits=st.integers(0, 24),
    clip=st.floats(1e-3, 1e3),
    modulus_bits=st.sampled_from([32, 64]),
    data=st.data(),
)
def test_sum_of_encoded_inputs_decodes_to_sum_of_clipped_inputs(n, dim, scale_bits, clip, modulus_bits, data):
    """Range condition: n * (floor(C 2^k) + 1) < 2^(M-1) (FixedPointConfig.max_nodes). Then the
    signed sum is exact (no wrap-around) and |decoded - sum of clipped| < n / 2^k per coordinate."""
    try:
        c = FixedPointConfig(clip=clip, scale_bits=scale_bits, modulus_bits=modulus_bits)
    except ConfigError:
        assume(False)
    assume(n <= c.max_nodes())
    elems = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    clipped, encoded, ints = [], [], []
    for i in range(n):
        x = data.draw(hnp.arrays(np.float64, (dim,), elements=elems))
        cx, _ = clip_l2({"t": x}, clip)
        q = quantize(cx, c, bytes([i]) * 32)
        clipped.append(cx["t"])
        encoded.append(q)
        ints.append([int(v) for v in fixed_to_signed(q["t"], modulus_bits)])
    total = sum_fixed(encoded, c)
    signed = fixed_to_signed(total["t"], modulus_bits)
    exact = [sum(col) for col in zip(*ints)]
    assert [int(v) for v in signed] == exact  # no wrap-around
    decoded = dequantize(total, c)["t"]
    want = np.sum(np.stack(clipped), axis=0)
    err = np.abs(decoded - want)
    assert np.all(err < n / c.scale + 1e-9 * n * clip)
