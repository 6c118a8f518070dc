"""FedAvg: the weighted mean, exact to the bit, independent of input order; registry; errors."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedchain.codec import encode_tensors
from fedchain.errors import ConfigError, FedchainError, InvalidBlob
from fedchain.hashing import commitment
from fedchain.strategy import STRATEGIES, ClientUpdate, FedAvg, Strategy, get_strategy, weighted_mean
from fedchain.strategy.base import AggregationError

SHAPES = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,), "fc.weight": (10, 36), "fc.bias": (10,)}


def make_updates(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], list[ClientUpdate]]:
    rng = np.random.default_rng(seed)
    base = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
    updates = []
    for i in range(n):
        node = "0x" + rng.bytes(20).hex()
        if i % 2:
            node = node.upper().replace("0X", "0x")  # checksummed-looking mixed case
        weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
        updates.append(ClientUpdate(node=node, weights=weights, num_samples=int(rng.integers(1, 5000))))
    return base, updates


def reference(updates: list[ClientUpdate]) -> dict[str, np.ndarray]:
    """Independent float64 reference: sum of (n_k / n) * w_k, any order."""
    n = sum(u.num_samples for u in updates)
    return {
        k: sum((u.num_samples / n) * u.weights[k].astype(np.float64) for u in updates)
        for k in SHAPES
    }


def test_fedavg_equals_the_weighted_mean_computed_independently():
    base, updates = make_updates(7)
    out = FedAvg().aggregate(base, updates)
    ref = reference(updates)
    assert set(out) == set(SHAPES)
    for k in SHAPES:
        assert out[k].dtype == np.float32 and out[k].shape == SHAPES[k]
        # float32 result of a float64 computation: within one float32 rounding of the reference
        np.testing.assert_allclose(out[k], ref[k], rtol=2e-7, atol=1e-7)


def test_weighted_mean_follows_the_documented_operation_order():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(1000).astype(np.float32) for _ in range(5)]
    ws = [3, 1, 4, 1, 5]
    acc = np.zeros(1000, np.float64)
    for x, w in zip(xs, ws):
        acc = acc + np.float64(w) * x.astype(np.float64)
    expected = (acc / np.float64(sum(ws))).astype(np.float32)
    assert weighted_mean(xs, ws).tobytes() == expected.tobytes()


def test_weighted_mean_known_values():
    out = weighted_mean([np.array([1.0, -2.0], np.float32), np.array([3.0, 2.0], np.float32)], [1, 3])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([2.5, 1.0], np.float32))


def test_single_update_is_returned_unchanged():
    base, updates = make_updates(1)
    out = FedAvg().aggregate(base, updates)
    for k in SHAPES:
        assert out[k].tobytes() == updates[0].weights[k].tobytes()


def test_input_order_does_not_change_a_single_bit():
    base, updates = make_updates(9, seed=1)
    expected = encode_tensors(FedAvg().aggregate(base, updates))
    rng = random.Random(7)
    for _ in range(5):
        shuffled = updates[:]
        rng.shuffle(shuffled)
        assert encode_tensors(FedAvg().aggregate(base, shuffled)) == expected


def test_updates_are_ordered_by_lowercase_node_address():
    # Accumulation order matters even in float64: (2^53 + 1) - 2^53 is 0 (2^53 + 1 rounds to 2^53)
    # while (2^53 - 2^53) + 1 is 1. Node order aa < bb < cc (case ignored) gives the first.
    big = np.array([2.0**53], np.float32)
    one = np.array([1.0], np.float32)
    neg = np.array([-(2.0**53)], np.float32)
    ups = [
        ClientUpdate("0xCC", {"w": neg}, 1),
        ClientUpdate("0xaa", {"w": big}, 1),
        ClientUpdate("0xBB", {"w": one}, 1),
    ]
    out = FedAvg().aggregate({"w": np.zeros(1, np.float32)}, ups)
    assert out["w"][0] == 0.0
    assert weighted_mean([big, one, neg], [1, 1, 1])[0] == 0.0
    assert weighted_mean([big, neg, one], [1, 1, 1])[0] == np.float32(1 / 3)


def test_hash_is_bit_identical_across_repeated_runs():
    hashes = set()
    for _ in range(3):
        base, updates = make_updates(5, seed=11)
        hashes.add(commitment(encode_tensors(get_strategy("fedavg").aggregate(base, updates))))
    assert len(hashes) == 1


def test_weights_sum_to_one_and_are_proportional_to_samples():
    _, updates = make_updates(6, seed=2)
    w = FedAvg().weights(updates)
    assert set(w) == {u.node for u in updates}
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
    total = sum(u.num_samples for u in updates)
    for u in updates:
        assert w[u.node] == u.num_samples / total


def test_aggregate_rejects_no_updates():
    with pytest.raises(AggregationError) as exc:
        FedAvg().aggregate({"w": np.zeros(1, np.float32)}, [])
    assert isinstance(exc.value, FedchainError) and isinstance(exc.value, ValueError)
    with pytest.raises(AggregationError):
        FedAvg().weights([])


def test_aggregate_rejects_mismatched_names():
    base, updates = make_updates(3)
    bad = ClientUpdate(updates[1].node, {k: v for k, v in updates[1].weights.items() if k != "fc.bias"}, 10)
    with pytest.raises(InvalidBlob) as exc:
        FedAvg().aggregate(base, [updates[0], bad, updates[2]])
    assert exc.value.reason == "wrong_names" and "fc.bias" in exc.value.message and bad.node in exc.value.message


def test_aggregate_rejects_mismatched_shapes():
    base, updates = make_updates(2)
    bad_weights = dict(updates[1].weights, **{"fc.bias": np.zeros(11, np.float32)})
    with pytest.raises(InvalidBlob) as exc:
        FedAvg().aggregate(base, [updates[0], ClientUpdate(updates[1].node, bad_weights, 5)])
    assert exc.value.reason == "wrong_shape" and "fc.bias" in exc.value.message


def test_aggregate_rejects_duplicate_nodes_and_bad_sample_counts():
    base, updates = make_updates(2)
    dup = ClientUpdate(updates[0].node.upper().replace("0X", "0x"), updates[1].weights, 3)
    with pytest.raises(AggregationError):
        FedAvg().aggregate(base, [updates[0], dup])
    for n in (0, -1, True, 1.5):
        with pytest.raises(AggregationError):
            FedAvg().aggregate(base, [ClientUpdate(updates[0].node, updates[0].weights, n)])


def test_weighted_mean_rejects_bad_input():
    x = np.ones(3, np.float32)
    with pytest.raises(AggregationError):
        weighted_mean([], [])
    with pytest.raises(AggregationError):
        weighted_mean([x, x], [1])
    with pytest.raises(AggregationError):
        weighted_mean([x, np.ones(4, np.float32)], [1, 1])
    with pytest.raises(AggregationError):
        weighted_mean([x], [0])


def test_registry_and_params():
    assert STRATEGIES["fedavg"] is FedAvg
    s = get_strategy("FedAvg", None)
    assert isinstance(s, FedAvg) and isinstance(s, Strategy)
    assert s.params == {} and s.config() == {"name": "fedavg", "params": {}}
    with pytest.raises(ConfigError):
        get_strategy("fedavg", {"lr": 0.1})


def test_unknown_strategy_lists_known_names():
    with pytest.raises(ConfigError) as exc:
        get_strategy("geomed")
    assert "geomed" in exc.value.message and "fedavg" in exc.value.message and "krum" in exc.value.message


def test_documented_test_vector():
    base = {"w": np.zeros(2, np.float32)}
    updates = [
        ClientUpdate("0xBB", {"w": np.array([3.0, 2.0], np.float32)}, 3),
        ClientUpdate("0xaa", {"w": np.array([1.0, -2.0], np.float32)}, 1),
    ]
    out = FedAvg().aggregate(base, updates)
    np.testing.assert_array_equal(out["w"], np.array([2.5, 1.0], np.float32))
    assert commitment(encode_tensors(out)) == "0x810163286579b26527b0e0e03a6802201a5183e3f6d448813320e2c73ad844c2"


def test_negative_zero_inputs_give_positive_zero():
    out = weighted_mean([np.array([-0.0], np.float32), np.array([-0.0], np.float32)], [2, 5])
    assert out.tobytes() == np.array([0.0], np.float32).tobytes()


def f32(bits: int) -> np.ndarray:
    return np.array([bits], np.uint32).view(np.float32)


def test_divides_once_at_the_end_not_by_reciprocal():
    # (1 * x1 + 97 * x2) / 98 is exactly halfway between two float32 values, so the division
    # rounds to even; multiplying by float64(1/98) lands one float64 ulp low and rounds down.
    out = weighted_mean([f32(0x3FFD6498), f32(0x3FFD6467)], [1, 97])
    assert out.view(np.uint32)[0] == 0x3FFD6468
