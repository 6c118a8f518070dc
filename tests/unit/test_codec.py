"""Canonical tensor codec and canonical JSON: round trips, exact bytes, and every rejection."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.codec import (
    ALIGN,
    UpdateIdentity,
    decode_update,
    encode_update,
    DTYPE,
    MAX_HEADER_BYTES,
    decode_json,
    decode_tensors,
    encode_json,
    encode_tensors,
    load_arrays_into,
    state_dict_to_arrays,
    tensor_spec,
)
from fedchain.errors import InvalidBlob


def craft(header: dict | bytes, data: bytes = b"", *, pad: bool = True) -> bytes:
    """A safetensors-like file with an arbitrary header (compact JSON, sorted keys unless bytes)."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data


def entry(begin: int, end: int, shape: list[int], dtype: str = "F32") -> dict:
    return {"data_offsets": [begin, end], "dtype": dtype, "shape": shape}


def reason_of(data: bytes, **kw) -> InvalidBlob:
    with pytest.raises(InvalidBlob) as exc:
        decode_tensors(data, **kw)
    return exc.value


SAMPLE = {
    "fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "fc.bias": np.array([-1.5, 0.25], dtype=np.float32),
}


# --- format -------------------------------------------------------------------------------------
def test_encode_writes_the_documented_bytes():
    data = encode_tensors({"b": np.array([1.0, 2.0], np.float32), "a": np.float32(-0.5)})
    header = b'{"a":{"data_offsets":[0,4],"dtype":"F32","shape":[]},"b":{"data_offsets":[4,12],"dtype":"F32","shape":[2]}}'
    header += b" " * (-len(header) % 8)
    expected = len(header).to_bytes(8, "little") + header + struct.pack("<3f", -0.5, 1.0, 2.0)
    assert data == expected
    assert (8 + len(header)) % ALIGN == 0


def test_documented_test_vectors():
    from fedchain.hashing import commitment

    example = encode_tensors({"b": np.array([1.0, 2.0], np.float32), "a": np.float32(-0.5)})
    assert len(example) == 132
    assert commitment(example) == "0x95a076c9adb75196cf6e886831449c93bc2a2835de57ccfa00b43b662304bdfe"
    empty = encode_tensors({})
    assert empty.hex() == "08000000000000007b7d202020202020"
    assert commitment(empty) == "0xc4b1f5a68467ae4dded977e53d736f1a6877eb397704cabac0292e2c5e30b334"


def test_canonical_bytes_independent_of_insertion_order_dtype_and_layout():
    forward = encode_tensors(SAMPLE)
    backward = encode_tensors(dict(reversed(list(SAMPLE.items()))))
    other_layout = encode_tensors(
        {
            "fc.bias": SAMPLE["fc.bias"].astype(">f8"),  # big-endian float64, exactly representable
            "fc.weight": np.asfortranarray(SAMPLE["fc.weight"]),
        }
    )
    assert forward == backward == other_layout


def test_output_is_readable_by_safetensors_numpy_load():
    from safetensors.numpy import load

    loaded = load(encode_tensors(SAMPLE))
    assert set(loaded) == set(SAMPLE)
    for name, value in SAMPLE.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], value)


def test_empty_model_and_zero_size_tensors_round_trip():
    from safetensors.numpy import load

    tensors = {"e": np.zeros((0, 3), np.float32), "s": np.float32(2.0), "v": np.ones(2, np.float32)}
    data = encode_tensors(tensors)
    out = decode_tensors(data)
    assert {k: v.shape for k, v in out.items()} == {"e": (0, 3), "s": (), "v": (2,)}
    assert set(load(data)) == set(tensors)
    assert decode_tensors(encode_tensors({})) == {}


NAME = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'), min_size=1, max_size=12)
ARRAY = hnp.arrays(
    dtype=np.float32,
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=80, deadline=None)
@given(tensors=st.dictionaries(NAME, ARRAY, max_size=5))
def test_round_trip_is_bit_exact(tensors):
    data = encode_tensors(tensors)
    out = decode_tensors(data, expected=tensor_spec(tensors))
    assert set(out) == set(tensors)
    for name, value in tensors.items():
        assert out[name].dtype == np.float32 and out[name].shape == value.shape
        assert out[name].tobytes() == value.astype("<f4").tobytes()  # keeps -0.0 and every bit
    assert encode_tensors(out) == data


def test_decoded_arrays_are_writable_float32_copies():
    data = bytearray(encode_tensors(SAMPLE))
    out = decode_tensors(data)
    arr = out["fc.weight"]
    assert arr.dtype == DTYPE and arr.flags.writeable and arr.flags.c_contiguous
    assert not np.shares_memory(arr, np.frombuffer(data, dtype=np.uint8))
    data[-1] ^= 0xFF  # changing the input afterwards does not change the output
    np.testing.assert_array_equal(arr, SAMPLE["fc.weight"])
    arr[0, 0] = 42.0  # and the output can be written to


def test_tensor_spec_maps_names_to_shape_tuples():
    assert tensor_spec(SAMPLE) == {"fc.weight": (2, 3), "fc.bias": (2,)}


# --- encode rejections ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_rejects_non_finite_values(bad):
    with pytest.raises(InvalidBlob) as exc:
        encode_tensors({"ok": np.ones(2, np.float32), "w": np.array([1.0, bad], np.float32)})
    assert exc.value.reason == "non_finite"
    assert "'w'" in exc.value.message


def test_encode_rejects_float64_values_that_overflow_float32():
    with pytest.raises(InvalidBlob) as exc:
        encode_tensors({"w": np.array([1e39])})
    assert exc.value.reason == "non_finite"


@pytest.mark.parametrize("name", ["", 3, None, 'a"b', "a\\b", "caf\u00e9", "tab\there", "nl\n"])
def test_encode_rejects_bad_names(name):
    with pytest.raises(InvalidBlob) as exc:
        encode_tensors({name: np.ones(1, np.float32)})
    assert exc.value.reason == "malformed"


def test_encode_rejects_non_numeric_arrays():
    with pytest.raises(InvalidBlob) as exc:
        encode_tensors({"c": np.ones(2, np.complex64)})
    assert exc.value.reason == "wrong_dtype"


# --- decode rejections ------------------------------------------------------------------------------
VALID = encode_tensors(SAMPLE)


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 20, 60, len(VALID) - 25, len(VALID) - 1])
def test_decode_rejects_truncated_file(cut):
    assert reason_of(VALID[:cut]).reason == "malformed"


def test_decode_rejects_trailing_bytes():
    err = reason_of(VALID + b"\x00\x00\x00\x00")
    assert err.reason == "malformed" and "trailing" in err.message


def test_decode_rejects_garbage():
    rng = random.Random(1234)
    for size in (8, 64, 1000, 100_000):
        assert reason_of(rng.randbytes(size)).reason == "malformed"
    # plausible length prefix, garbage header
    assert reason_of(craft(b"\xff\xfe not json at all")).reason == "malformed"
    assert reason_of(craft(b"[1, 2, 3]")).reason == "malformed"
    assert reason_of(craft(b'{"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]},"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]}}', b"\0" * 4)).reason == "malformed"


def test_decode_rejects_huge_header_length():
    err = reason_of((2**63).to_bytes(8, "little") + b"{}      ")
    assert err.reason == "malformed" and "limit" in err.message
    # within the limit but more than the file holds
    err = reason_of((MAX_HEADER_BYTES).to_bytes(8, "little") + b"{}      ")
    assert err.reason == "malformed" and "truncated" in err.message


def test_decode_rejects_oversize_input_before_parsing():
    err = reason_of(VALID, max_bytes=len(VALID) - 1)
    assert err.reason == "too_large"
    assert decode_tensors(VALID, max_bytes=len(VALID))  # exactly at the limit is fine


def test_decode_rejects_offsets_out_of_range():
    err = reason_of(craft({"a": entry(0, 16, [4])}, b"\0" * 8))
    assert err.reason == "malformed" and "out of range" in err.message


def test_decode_rejects_overlapping_offsets():
    err = reason_of(craft({"a": entry(0, 8, [2]), "b": entry(4, 12, [2])}, b"\0" * 12))
    assert err.reason == "malformed" and "overlap" in err.message


def test_decode_rejects_gaps_between_tensors():
    err = reason_of(craft({"a": entry(0, 4, [1]), "b": entry(8, 12, [1])}, b"\0" * 12))
    assert err.reason == "malformed" and "gap" in err.message


def test_decode_rejects_span_that_does_not_match_shape():
    err = reason_of(craft({"a": entry(0, 12, [2])}, b"\0" * 12))
    assert err.reason == "malformed" and "span" in err.message


def test_decode_rejects_reversed_offsets():
    assert reason_of(craft({"a": entry(8, 4, [1])}, b"\0" * 8)).reason == "malformed"


@pytest.mark.parametrize("shape", [[-1], [1.0], [True], "4", [[2]], None])
def test_decode_rejects_bad_shapes(shape):
    assert reason_of(craft({"a": entry(0, 4, shape)}, b"\0" * 4)).reason == "malformed"


@pytest.mark.parametrize("dtype,size", [("F64", 8), ("F16", 2), ("BF16", 2), ("I32", 4)])
def test_decode_rejects_wrong_dtype(dtype, size):
    err = reason_of(craft({"x": entry(0, 2 * size, [2], dtype)}, b"\0" * (2 * size)))
    assert err.reason == "wrong_dtype" and dtype in err.message and "'x'" in err.message


def test_decode_rejects_f64_file_written_by_safetensors():
    from safetensors.numpy import save

    assert reason_of(save({"x": np.zeros(2)})).reason == "wrong_dtype"


def test_decode_rejects_non_canonical_headers():
    # What the safetensors library writes is valid safetensors but not our canonical form.
    from safetensors.numpy import save

    assert reason_of(save(SAMPLE)).reason == "malformed"
    two = struct.pack("<2f", 1.0, 2.0)
    cases = [
        # spaces in the JSON
        craft(json.dumps({"a": entry(0, 4, [1]), "b": entry(4, 8, [1])}, sort_keys=True).encode(), two),
        # tensors laid out in reverse name order
        craft({"a": entry(4, 8, [1]), "b": entry(0, 4, [1])}, two),
        # padding with something else than spaces / not padded
        craft(json.dumps({"a": entry(0, 8, [2])}, separators=(",", ":"), sort_keys=True).encode() + b"\n" * 5, two, pad=False),
        craft(json.dumps({"a": entry(0, 8, [2])}, separators=(",", ":"), sort_keys=True).encode(), two, pad=False),
        # metadata
        craft({"__metadata__": {"k": "v"}, "a": entry(0, 8, [2])}, two),
    ]
    for data in cases:
        assert reason_of(data).reason == "malformed"


def test_decode_rejects_unexpected_entry_keys_and_names():
    four = b"\0" * 4
    assert reason_of(craft({"a": {**entry(0, 4, [1]), "extra": 1}}, four)).reason == "malformed"
    assert reason_of(craft({"a": {"dtype": "F32", "shape": [1]}}, four)).reason == "malformed"
    assert reason_of(craft({"": entry(0, 4, [1])}, four)).reason == "malformed"
    assert reason_of(craft({"a": [0, 4]}, four)).reason == "malformed"


def test_decode_rejects_wrong_names_against_expected():
    expected = {"fc.weight": (2, 3), "fc.bias": (2,), "fc2.bias": (1,)}
    err = reason_of(VALID, expected=expected)
    assert err.reason == "wrong_names" and "missing ['fc2.bias']" in err.message
    err = reason_of(VALID, expected={"fc.weight": (2, 3)})
    assert err.reason == "wrong_names" and "unexpected ['fc.bias']" in err.message
    assert "\n" not in err.message


def test_decode_rejects_wrong_shape_against_expected():
    err = reason_of(VALID, expected={"fc.weight": (3, 2), "fc.bias": (2,)})
    assert err.reason == "wrong_shape"
    assert err.message == "tensor 'fc.weight' has shape (2, 3), expected (3, 2)"


@pytest.mark.parametrize("bad", [b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\x00\x00\x80\xff"])
def test_decode_rejects_non_finite_values(bad):
    data = bytearray(VALID)
    data[-4:] = bad  # last float of the last tensor in name order: fc.weight
    err = reason_of(bytes(data))
    assert err.reason == "non_finite" and "'fc.weight'" in err.message


# --- torch bridge ----------------------------------------------------------------------------------
def test_state_dict_round_trip_with_linear():
    import torch

    torch.manual_seed(0)
    src = torch.nn.Linear(4, 3)
    arrays = state_dict_to_arrays(src)
    assert tensor_spec(arrays) == {"weight": (3, 4), "bias": (3,)}
    decoded = decode_tensors(encode_tensors(arrays), expected=tensor_spec(arrays))
    dst = torch.nn.Linear(4, 3)
    load_arrays_into(dst, decoded)
    for name, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[name], value)
    # copies, not views of the module
    with torch.no_grad():
        src.weight.add_(1.0)
    assert not np.array_equal(arrays["weight"], src.weight.detach().numpy())


def test_state_dict_includes_float_buffers_and_skips_integer_ones():
    import torch

    arrays = state_dict_to_arrays(torch.nn.BatchNorm1d(3).state_dict())
    assert set(arrays) == {"weight", "bias", "running_mean", "running_var"}
    assert all(a.dtype == np.float32 for a in arrays.values())


def test_load_arrays_into_is_strict_and_changes_nothing_on_error():
    import torch

    module = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    good = state_dict_to_arrays(module)
    with pytest.raises(InvalidBlob) as exc:
        load_arrays_into(module, {"weight": np.zeros((2, 2), np.float32)})
    assert exc.value.reason == "wrong_names" and "bias" in exc.value.message
    with pytest.raises(InvalidBlob) as exc:
        load_arrays_into(module, {**good, "bias": np.zeros(3, np.float32)})
    assert exc.value.reason == "wrong_shape"
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])


# --- JSON ----------------------------------------------------------------------------------------
def test_encode_json_is_canonical():
    doc = {"b": [1, 0.1, 1e-7, True, None], "a": {"z": "h\u00e9", "y": np.float32(0.5), "x": np.int64(3)}}
    assert encode_json(doc) == '{"a":{"x":3,"y":0.5,"z":"h\u00e9"},"b":[1,0.1,1e-07,true,null]}'.encode("utf-8")
    assert encode_json(dict(reversed(list(doc.items())))) == encode_json(doc)


def test_encode_json_writes_floats_and_escapes_as_documented():
    doc = [1.0, 0.0001, -0.0, 1e15, 1e-05, 1e16, 1.5e300, 'q"\\', "\n\x01\u2028", "\U0001f600"]
    expected = '[1.0,0.0001,-0.0,1000000000000000.0,1e-05,1e+16,1.5e+300,"q\\"\\\\","\\n\\u0001\u2028","\U0001f600"]'
    assert encode_json(doc) == expected.encode("utf-8")


def test_encode_json_rejects_lone_surrogates():
    with pytest.raises(InvalidBlob) as exc:
        encode_json({"x": "\ud800"})
    assert exc.value.reason == "malformed"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_encode_json_rejects_non_finite(bad):
    with pytest.raises(InvalidBlob) as exc:
        encode_json({"x": bad})
    assert exc.value.reason == "non_finite"


def test_encode_json_rejects_unserialisable():
    with pytest.raises(InvalidBlob) as exc:
        encode_json({"x": object()})
    assert exc.value.reason == "malformed"


def test_json_round_trip():
    doc = {"round": 3, "nodes": ["0xab", "0xcd"], "lr": 0.01, "name": "caf\u00e9"}
    assert decode_json(encode_json(doc), max_bytes=1024) == doc


def test_decode_json_rejects_oversize():
    with pytest.raises(InvalidBlob) as exc:
        decode_json(b'{"a":1}', max_bytes=6)
    assert exc.value.reason == "too_large"


@pytest.mark.parametrize("bad", [b"", b"{", b"\xff\xfe{}", b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", b"[" * 100_000])
def test_decode_json_rejects_malformed(bad):
    with pytest.raises(InvalidBlob) as exc:
        decode_json(bad, max_bytes=1 << 20)
    assert exc.value.reason == "malformed"


# --- update blobs name their sender (protocol v2) --------------------------------------------
_ME = UpdateIdentity(chain_id=31337, contract="0x" + "52" * 20, round=3, node="0x" + "11" * 20)


def test_update_blob_round_trips_with_its_identity():
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    data = encode_update(arrays, _ME)
    out = decode_update(data, identity=_ME, expected={"w": (2, 3)})
    np.testing.assert_array_equal(out["w"], arrays["w"])
    assert b'"__metadata__":{"chain_id":"31337"' in data


def test_update_blob_of_another_node_is_rejected_as_not_own_update():
    data = encode_update({"w": np.zeros(3, np.float32)}, _ME)
    for other in (dataclasses.replace(_ME, node="0x" + "22" * 20), dataclasses.replace(_ME, round=4),
                  dataclasses.replace(_ME, chain_id=1), dataclasses.replace(_ME, contract="0x" + "53" * 20)):
        with pytest.raises(InvalidBlob) as e:
            decode_update(data, identity=other)
        assert e.value.reason == "not_own_update"


def test_update_blob_without_identity_is_malformed():
    data = encode_tensors({"w": np.zeros(3, np.float32)})
    with pytest.raises(InvalidBlob) as e:
        decode_update(data, identity=_ME)
    assert e.value.reason == "malformed" and "name its sender" in e.value.message


def test_model_decoder_refuses_update_metadata():
    data = encode_update({"w": np.zeros(3, np.float32)}, _ME)
    with pytest.raises(InvalidBlob) as e:
        decode_tensors(data)
    assert e.value.reason == "malformed"


def test_update_metadata_in_non_canonical_order_is_malformed():
    data = encode_update({"w": np.zeros(2, np.float32)}, _ME)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    raw = json.dumps({"__metadata__": dict(reversed(list(meta.items()))), **header}, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    forged = len(raw).to_bytes(8, "little") + raw + data[8 + n:]
    with pytest.raises(InvalidBlob) as e:
        decode_update(forged, identity=_ME)
    assert e.value.reason == "malformed"
