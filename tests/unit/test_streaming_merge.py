"""The streaming merge (compute.stream_round, aggregate.RunningWeightedMean, compute.check_update_views)
gives the same bytes as the reference path merge(decide(...)): same decisions and reasons, same model,
state and details, same errors; and it holds O(model) memory, not O(nodes x model)."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from fedchain.aggregator import compute as C
from fedchain.aggregator.compute import RoundContext, check_update, check_update_views, compute_round, decide, merge, stream_round
from fedchain.aggregator.service import build_config
from fedchain.chain.types import Commitment
from fedchain.codec import encode_tensors, encode_update
from fedchain.hashing import commitment
from fedchain.strategy import aggregate as A
from fedchain.strategy.aggregate import RunningWeightedMean, weighted_mean, weighted_mean_f64
from fedchain.strategy.points import delta_of

from fakes import account

CTX = RoundContext(31337, "0x" + "52" * 20, 4)
MEAN_RULES = [("fedavg", {}), ("fedprox", {"mu": 0.1}), ("fedavgm", {"server_lr": 0.7, "momentum": 0.9}),
              ("fedadam", {"server_lr": 0.05}), ("fedyogi", {"server_lr": 0.05, "tau": 1e-2})]


def _awkward(rng: np.random.Generator, shape: tuple[int, ...], extreme: float = -3.4e38) -> np.ndarray:
    """float32 values that stress rounding: wide exponents, negative zeros, subnormals, ties."""
    x = (rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, shape))).astype(np.float32)
    flat = x.reshape(-1)
    if flat.size >= 8:
        flat[:4] = [-0.0, 0.0, np.float32(1e-45), np.float32(extreme)]
    return x


def _base(rng, spec):
    """(not near float32's limit: the adaptive rules square the deltas, whose state must stay finite)"""
    return {k: _awkward(rng, s, extreme=-3.4e15) for k, s in spec.items()}


SPEC = {"layer.w": (37, 29), "layer.b": (29,), "out": (5, 3, 2)}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Slices of 64 elements, so every tensor above is walked in several slices, one partial."""
    monkeypatch.setattr(A, "STREAM_CHUNK", 64)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_running_mean_is_weighted_mean_to_the_bit(k):
    rng = np.random.default_rng(k)
    xs = [_awkward(rng, (41, 13)) for _ in range(k)]
    ws = [int(w) for w in rng.integers(1, 2**40, k)]
    run = RunningWeightedMean((41, 13))
    for x, w in zip(xs, ws):
        run.add(x, w)
    assert run.result().tobytes() == weighted_mean(xs, ws).tobytes()


def test_running_mean_of_deltas_is_weighted_mean_of_delta_of_to_the_bit():
    rng = np.random.default_rng(3)
    base = {"t": _awkward(rng, (300,))}
    xs = [{"t": _awkward(rng, (300,))} for _ in range(5)]
    xs.append({"t": base["t"].copy()})  # a zero delta: -0.0 - -0.0 etc.
    ws = [3, 1, 2**33, 7, 1, 5]
    run = RunningWeightedMean((300,))
    for x, w in zip(xs, ws):
        run.add(x["t"], w, minus=base["t"])
    want = weighted_mean_f64([delta_of(x, base, ["t"])["t"] for x in xs], ws)
    assert run.result_f64().tobytes() == want.tobytes()


@pytest.mark.parametrize("minus", [False, True], ids=["models", "deltas"])
def test_running_mean_on_several_threads_is_the_one_thread_result_to_the_bit(monkeypatch, minus):
    rng = np.random.default_rng(5)
    shape = (97, 23)  # 2231 elements: 35 slices of 64, the last partial; above PARALLEL_MIN_SLICES
    base = _awkward(rng, shape)
    xs = [_awkward(rng, shape) for _ in range(4)]
    ws = [3, 2**35, 1, 77]
    results, results32 = {}, {}
    for workers in (1, 2, 3):
        monkeypatch.setattr(A, "_add_workers", lambda size, w=workers: w)
        run, run32 = RunningWeightedMean(shape), RunningWeightedMean(shape)
        for x, w in zip(xs, ws):
            run.add(x, w, minus=base if minus else None)
            run32.add(x, w, minus=base if minus else None)
        results[workers] = run.result_f64().tobytes()
        results32[workers] = run32.result()
    assert results[2] == results[1] and results[3] == results[1]
    want = (weighted_mean_f64([delta_of({"t": x}, {"t": base}, ["t"])["t"] for x in xs], ws) if minus
            else weighted_mean_f64(xs, ws))
    assert results[1] == want.tobytes()
    for got in results32.values():  # the float32 result, cast slice by slice on each thread
        assert got.dtype == np.float32 and got.shape == shape
        assert got.tobytes() == want.astype(np.float32).tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_is_found_in_any_span_on_any_number_of_threads(monkeypatch, bad):
    x = np.random.default_rng(9).standard_normal(2231).astype(np.float32)  # 35 slices of 64
    assert all(A.all_finite(x) for _ in range(2))
    for workers in (1, 2, 3):
        monkeypatch.setattr(A, "_add_workers", lambda size, w=workers: w)
        assert A.all_finite(x)
        for at in (0, 63, 64, 767, 768, 1535, 1536, 2230):  # slice and span edges, the last element
            y = x.copy()
            y[at] = bad
            assert not A.all_finite(y), (workers, at)
            assert not A.all_finite(y.reshape(97, 23)), (workers, at)


def test_threads_split_an_array_into_contiguous_slice_aligned_spans():
    for size, parts in [(2231, 2), (2231, 3), (64, 2), (65, 4), (1, 2), (0, 2), (64 * 16, 2)]:
        got = A.spans(size, parts)
        assert len(got) <= parts
        assert got[0][0] == 0 and got[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(got, got[1:]))  # contiguous, no overlap
        assert all(lo % 64 == 0 for lo, _ in got)  # every span walks the whole array's slices
    assert A._add_workers(16 * 64 - 1) == 1 and A._add_workers(16 * 64) >= 1


def test_running_mean_rejects_what_weighted_mean_rejects():
    run = RunningWeightedMean((3,))
    with pytest.raises(A.AggregationError, match="positive integer"):
        run.add(np.zeros(3, np.float32), 0)
    with pytest.raises(A.AggregationError, match="shape"):
        run.add(np.zeros(4, np.float32), 1)
    with pytest.raises(A.AggregationError, match="no arrays"):
        RunningWeightedMean((3,)).result()


# --- check_update_views == check_update ---------------------------------------------------------
def _blob_cases(rng, base):
    node, other = account(1).address, account(2).address
    good = encode_update(base, CTX.identity(node))
    bad_nan = {k: v.copy() for k, v in base.items()}
    bad_nan["layer.w"][3, 4] = np.nan
    nan_blob = bytearray(good)  # a NaN written into the bytes (encode refuses NaN)
    struct.pack_into("<f", nan_blob, len(nan_blob) - 4, float("inf"))
    wrong_shape = {**base, "layer.b": np.zeros(28, np.float32)}
    n = int.from_bytes(good[:8], "little")
    spaced = good[:8] + good[8 : 8 + n].replace(b'"dtype"', b' "dtype"', 1)[: n] + good[8 + n:]
    return {
        "good": good,
        "other_sender": encode_update(base, CTX.identity(other)),
        "other_round": encode_update(base, RoundContext(31337, CTX.contract, 5).identity(node)),
        "no_identity": encode_tensors(base),
        "inf_in_bytes": bytes(nan_blob),
        "wrong_shape": encode_update(wrong_shape, CTX.identity(node)),
        "missing_tensor": encode_update({k: v for k, v in base.items() if k != "out"}, CTX.identity(node)),
        "truncated": good[:-4],
        "trailing": good + b"\0\0\0\0",
        "not_canonical": spaced,
        "garbage": b"\x07" * 64,
        "tiny": b"abc",
    }


def test_check_update_views_accepts_and_rejects_exactly_like_check_update():
    rng = np.random.default_rng(5)
    base = _base(rng, SPEC)
    spec = {k: tuple(v.shape) for k, v in base.items()}
    node = account(1).address
    for label, data in _blob_cases(rng, base).items():
        c = Commitment(4, node, commitment(data), 10)
        for max_bytes in (1 << 20, len(data) - 1):
            want = check_update(data, c, spec, CTX, max_bytes)
            got = check_update_views(data, c, spec, CTX, max_bytes)
            assert got[1] == want[1], label
            assert (got[0] is None) == (want[0] is None), label
            if want[0] is not None:
                assert sorted(got[0]) == sorted(want[0])
                for k in want[0]:
                    assert got[0][k].dtype == want[0][k].dtype and got[0][k].shape == want[0][k].shape
                    assert got[0][k].tobytes() == want[0][k].tobytes(), (label, k)
    good = _blob_cases(rng, base)["good"]
    wrong = Commitment(4, node, "0x" + "ab" * 32, 10)
    assert check_update_views(good, wrong, spec, CTX, 1 << 20) == check_update(good, wrong, spec, CTX, 1 << 20)
    assert check_update_views(None, wrong, spec, CTX, 1 << 20, ["0x" + "cd" * 32]) == \
        check_update(None, wrong, spec, CTX, 1 << 20, ["0x" + "cd" * 32])


# --- stream_round == merge(decide(...)) ----------------------------------------------------------
def _world(rng, base, *, samples=None, extras=True):
    """Eight nodes (in scrambled commit order): honest updates with awkward values and sample counts
    beyond the cap, plus (``extras``) a missing upload, a copied commitment, a duplicate hash and a
    NaN blob, so decisions of every kind meet the streaming path."""
    nodes = [account(i).address for i in range(1, 9)]
    blobs: dict[str, bytes] = {}
    cs: list[Commitment] = []
    samples = samples or [100, 2**20, 7, 3000, 1, 55, 999, 12]
    for i, node in enumerate(nodes[:5]):
        noise = {k: rng.standard_normal(v.shape) * np.exp2(rng.integers(-40, 8, v.shape)) for k, v in base.items()}
        upd = {k: np.clip(v.astype(np.float64) + noise[k], -3e38, 3e38).astype(np.float32) for k, v in base.items()}
        data = encode_update(upd, CTX.identity(node))
        blobs[commitment(data)] = data
        cs.append(Commitment(4, node, commitment(data), samples[i]))
    if extras:
        missing = encode_update(base, CTX.identity(nodes[5]))  # committed, never uploaded
        cs.append(Commitment(4, nodes[5], commitment(missing), samples[5]))
        cs.append(Commitment(4, nodes[6], cs[0].update_hash, samples[6]))  # copies node 1's commitment
        nan = bytearray(encode_update(base, CTX.identity(nodes[7])))
        struct.pack_into("<f", nan, len(nan) - 8, float("nan"))
        blobs[commitment(bytes(nan))] = bytes(nan)
        cs.append(Commitment(4, nodes[7], commitment(bytes(nan)), samples[7]))
    order = rng.permutation(len(cs))
    return blobs, [cs[i] for i in order]


def _config(name, params, max_samples=5000):
    return build_config(task_spec="t", task_params={}, training={}, strategy={"name": name, "params": params}, seed=1,
                        round_id=4, min_updates=2, eval_seed=0, max_samples=max_samples)


def _same(a, b):
    assert [d.to_json() for d in a.decisions] == [d.to_json() for d in b.decisions]
    assert a.model_bytes == b.model_bytes and a.model_hash == b.model_hash
    assert a.state_bytes == b.state_bytes and a.state_hash == b.state_hash
    assert a.details == b.details
    if a.model is not None:
        assert list(a.model) == list(b.model)


def _reference(config, base, cs, fetch, *, min_updates=2, state=None, uploads=None):
    return merge(config, base, decide(config, base, cs, fetch, CTX, uploads=uploads), min_updates=min_updates, state=state)


@pytest.mark.parametrize("name,params", MEAN_RULES, ids=[n for n, _ in MEAN_RULES])
def test_stream_round_is_the_reference_to_the_bit(name, params):
    rng = np.random.default_rng(11)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base)
    config = _config(name, params)
    calls: list[str] = []

    def fetch(h):
        calls.append(h)
        return blobs.get(h)

    ref = _reference(config, base, cs, blobs.get)
    got = stream_round(config, base, cs, fetch, CTX, min_updates=2)
    _same(got, ref)
    assert got.model_hash is not None and sum(d.accepted for d in got.decisions) == 5
    assert {d.code for d in got.decisions} >= {None, "missing_upload", "not_own_update", "non_finite"}
    assert compute_round(config, base, cs, blobs.get, CTX, min_updates=2).model_bytes == ref.model_bytes
    if ref.state_bytes is not None:
        # the server optimiser's second round, from the first round's state
        from fedchain.codec import decode_tensors

        state = decode_tensors(ref.state_bytes)
        _same(stream_round(config, base, cs, blobs.get, CTX, min_updates=2, state=state),
              _reference(config, base, cs, blobs.get, state=state))


def test_stream_round_large_tensor_many_slices():
    rng = np.random.default_rng(2)
    base = {"big": rng.standard_normal(20_011, dtype=np.float32), "small": rng.standard_normal(3, dtype=np.float32)}
    blobs, cs = _world(rng, base, extras=False)
    for name, params in MEAN_RULES:
        config = _config(name, params)
        _same(stream_round(config, base, cs, blobs.get, CTX, min_updates=2), _reference(config, base, cs, blobs.get))


@pytest.mark.parametrize("name,params", MEAN_RULES, ids=[n for n, _ in MEAN_RULES])
def test_stream_round_fails_like_the_reference(name, params):
    rng = np.random.default_rng(4)
    base = _base(rng, SPEC)
    # below quorum: decisions and weights, no model
    blobs, cs = _world(rng, base, extras=False)
    config = _config(name, params)
    _same(stream_round(config, base, cs, blobs.get, CTX, min_updates=6), _reference(config, base, cs, blobs.get, min_updates=6))
    # nothing uploaded at all
    _same(stream_round(config, base, cs, lambda h: None, CTX, min_updates=1),
          _reference(config, base, cs, lambda h: None, min_updates=1))
    # a zero sample count: the reference raises from the strategy's weights(); so must the stream
    blobs, cs = _world(rng, base, samples=[5, 0, 3, 4, 2], extras=False)
    with pytest.raises(A.AggregationError) as want:
        _reference(config, base, cs, blobs.get)
    with pytest.raises(A.AggregationError) as got:
        stream_round(config, base, cs, blobs.get, CTX, min_updates=2)
    assert str(got.value) == str(want.value)
    # a server optimiser's state that does not fit the model: the round's error, no model
    if name in ("fedavgm", "fedadam", "fedyogi"):
        blobs, cs = _world(rng, base, extras=False)
        bad = {"m.nope": np.zeros(2, np.float32)}
        got_c, want_c = stream_round(config, base, cs, blobs.get, CTX, min_updates=2, state=bad), \
            _reference(config, base, cs, blobs.get, state=bad)
        _same(got_c, want_c)
        assert got_c.model_hash is None and "error" in got_c.details


def test_a_zero_dimensional_tensor_streams_like_the_reference():
    # (the server optimisers cannot take 0-d tensors in either path: numpy returns scalars there)
    rng = np.random.default_rng(6)
    base = {**_base(rng, SPEC), "scalar": np.array(1.5, np.float32)}
    blobs, cs = _world(rng, base)
    for name, params in MEAN_RULES[:2]:
        config = _config(name, params)
        _same(stream_round(config, base, cs, blobs.get, CTX, min_updates=2), _reference(config, base, cs, blobs.get))


def test_uploads_lookup_and_hash_mismatch_reasons_match():
    rng = np.random.default_rng(8)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base)
    config = _config("fedavg", {})
    uploads = lambda node: ["0x" + "77" * 32] if node == account(6).address else []  # noqa: E731
    _same(stream_round(config, base, cs, blobs.get, CTX, min_updates=2, uploads=uploads),
          _reference(config, base, cs, blobs.get, uploads=uploads))


def test_compute_round_streams_mean_rules_only(monkeypatch):
    rng = np.random.default_rng(9)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base, extras=False)
    used = []
    real = C.stream_round
    monkeypatch.setattr(C, "stream_round", lambda *a, **k: used.append(1) or real(*a, **k))
    compute_round(_config("fedadam", {}), base, cs, blobs.get, CTX, min_updates=2)
    compute_round(_config("median", {}), base, cs, blobs.get, CTX, min_updates=2)
    assert used == [1]
    with pytest.raises(ValueError, match="does not stream"):
        real(_config("krum", {"f": 1}), base, cs, blobs.get, CTX, min_updates=2)


@pytest.mark.parametrize("name,params", MEAN_RULES[:2], ids=["fedavg", "fedprox"])
def test_a_fedavg_round_needs_only_the_base_models_shapes(name, params):
    rng = np.random.default_rng(12)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base)
    config = _config(name, params)
    assert not C.reads_base_values(config)
    shapes = C.ModelShapes.of(base)
    assert dict(shapes.shapes) == {k: v.shape for k, v in base.items()}
    _same(compute_round(config, shapes, cs, blobs.get, CTX, min_updates=2), _reference(config, base, cs, blobs.get))


@pytest.mark.parametrize("name,params", [MEAN_RULES[2], ("median", {}), ("krum", {"f": 1})],
                         ids=["fedavgm", "median", "krum"])
def test_a_rule_that_reads_the_base_model_refuses_its_shapes_alone(name, params):
    rng = np.random.default_rng(13)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base, extras=False)
    config = _config(name, params)
    assert C.reads_base_values(config)
    with pytest.raises(ValueError, match=f"{name} reads the base model's values"):
        compute_round(config, C.ModelShapes.of(base), cs, blobs.get, CTX, min_updates=2)


@pytest.mark.parametrize("name,params", [MEAN_RULES[0], MEAN_RULES[3], ("median", {}), ("krum", {"f": 1})],
                         ids=["stream", "stream-deltas", "sliced", "reference"])
def test_a_verified_fetch_is_not_hashed_again_and_decides_the_same(monkeypatch, name, params):
    rng = np.random.default_rng(14)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base)
    config = _config(name, params)
    want = compute_round(config, base, cs, blobs.get, CTX, min_updates=2)
    hashed: list[int] = []
    real = C.commitment
    monkeypatch.setattr(C, "commitment", lambda data, **k: hashed.append(len(data)) or real(data, **k))
    got = compute_round(config, base, cs, blobs.get, CTX, min_updates=2, fetch_verified=True)
    _same(got, want)
    assert got.model_bytes is not None
    assert set(hashed) <= {len(got.model_bytes), len(got.state_bytes or b"")}  # the results only, no blob
    assert not set(hashed) & {len(b) for b in blobs.values()}
    hashed.clear()
    compute_round(config, base, cs, blobs.get, CTX, min_updates=2)
    assert len(hashed) >= len(blobs)  # without the flag every fetched blob is hashed


def test_stream_round_memory_is_o_model_not_o_nodes_times_model(monkeypatch):
    monkeypatch.setattr(A, "STREAM_CHUNK", 1 << 16)
    P, N = 250_000, 24  # 1 MB of float32 per update
    rng = np.random.default_rng(1)
    base = {"w": rng.standard_normal(P, dtype=np.float32)}
    model_bytes = 4 * P
    nodes = [account(i).address for i in range(1, N + 1)]
    payload = {n: (base["w"] + np.float32(i)).astype(np.float32) for i, n in enumerate(nodes)}
    hashes = {}
    for n in nodes:  # blobs are made on demand (as a store reads them), so only the merge's memory counts
        hashes[commitment(encode_update({"w": payload[n]}, CTX.identity(n)))] = n
    cs = [Commitment(4, n, h, 10) for h, n in hashes.items()]
    fetch = lambda h: encode_update({"w": payload[hashes[h]]}, CTX.identity(hashes[h]))  # noqa: E731
    config = _config("fedavg", {})
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        got = stream_round(config, base, cs, fetch, CTX, min_updates=2)
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        want = _reference(config, base, cs, fetch)
        _, ref_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.model_bytes == want.model_bytes
    # accumulator 2x, one blob 1x (+ its encoding while fetch builds it), model + model bytes 2x
    print(f"peak: stream {stream_peak / model_bytes:.2f}x, reference {ref_peak / model_bytes:.2f}x the model")
    assert stream_peak < 5.5 * model_bytes, stream_peak / model_bytes
    assert ref_peak > N * model_bytes  # the reference holds every decoded update


# --- median / trimmed mean slice by slice == merge(decide(...)) ----------------------------------
SLICED_RULES = [("median", {}), ("trimmed_mean", {"beta": 0.2}), ("trimmed_mean", {"beta": 0.0})]


@pytest.mark.parametrize("name,params", SLICED_RULES, ids=["median", "trimmed-0.2", "trimmed-0"])
@pytest.mark.parametrize("extras", [True, False], ids=["rejections", "all-accepted"])
def test_sliced_round_is_the_reference_to_the_bit(monkeypatch, name, params, extras):
    monkeypatch.setattr(C, "SLICE_BUDGET", 300)  # slices of 300 // n coordinates: many, one partial
    rng = np.random.default_rng(21)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base, extras=extras)
    config = _config(name, params)
    ref = _reference(config, base, cs, blobs.get)
    got = C.sliced_round(config, base, cs, blobs.get, CTX, min_updates=2)
    _same(got, ref)
    assert got.model_hash is not None
    assert compute_round(config, base, cs, blobs.get, CTX, min_updates=2).model_bytes == ref.model_bytes


def test_sliced_round_even_count_and_failures_match(monkeypatch):
    monkeypatch.setattr(C, "SLICE_BUDGET", 100)
    rng = np.random.default_rng(22)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base, extras=False)
    cs = cs[:4]  # an even count: the median is the mean of the two middle values
    for name, params in SLICED_RULES:
        config = _config(name, params)
        _same(C.sliced_round(config, base, cs, blobs.get, CTX, min_updates=2), _reference(config, base, cs, blobs.get))
        _same(C.sliced_round(config, base, cs, blobs.get, CTX, min_updates=5),
              _reference(config, base, cs, blobs.get, min_updates=5))


def test_robust_rules_with_pre_aggregators_keep_the_reference_path(monkeypatch):
    rng = np.random.default_rng(23)
    base = _base(rng, SPEC)
    blobs, cs = _world(rng, base, extras=False)
    called = []
    monkeypatch.setattr(C, "sliced_round", lambda *a, **k: called.append(1))
    config = _config("median", {"pre": [{"name": "clip", "c": 1.0}]})
    got = compute_round(config, base, cs, blobs.get, CTX, min_updates=2)
    assert called == [] and got.model_bytes == _reference(config, base, cs, blobs.get).model_bytes
