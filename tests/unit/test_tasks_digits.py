"""The built-in ``digits`` task: shapes, the non-IID split, determinism, and that training helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedchain.codec import load_arrays_into, state_dict_to_arrays
from fedchain.errors import ConfigError
from fedchain.tasks import BUILTIN_TASKS, load_task
from fedchain.tasks.digits.task import N_CLASSES


@pytest.fixture(scope="module")
def task():
    return load_task("digits")


def test_registered_and_configured(task):
    assert "digits" in BUILTIN_TASKS and task.name == "digits" and task.primary_metric == "error"
    assert set(task.default_params()) == {"hidden", "depth", "alpha"}
    assert set(task.default_training()) == {"epochs", "batch_size", "lr"}


def test_shapes_and_model(task):
    p = task.resolve_params(None)
    d = task.node_data(0, 5, 0, p)
    assert d.x.shape[1] == 64 and d.y.shape == (len(d), 1) and d.x.dtype == torch.float32
    assert float(d.x.max()) <= 16 and float(d.x.min()) >= 0
    m = task.build_model(p, 0)
    assert m(d.x[:3]).shape == (3, N_CLASSES)
    a, b = state_dict_to_arrays(task.build_model(p, 7)), state_dict_to_arrays(task.build_model(p, 7))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    val = task.validation_data(0, p)
    assert len(val) == 359  # a stratified 20% of each class


def test_split_is_a_partition_non_iid_and_seeded(task):
    p = task.resolve_params(None)
    parts = [task.node_data(i, 10, 0, p) for i in range(10)]
    val = task.validation_data(0, p)
    assert sum(len(d) for d in parts) + len(val) == 1797
    # rows are disjoint: compare the images themselves
    seen = set()
    for d in parts + [val]:
        for row in d.x.numpy():
            seen.add(row.tobytes())
    assert len(seen) >= 1797 - 20  # load_digits has a few duplicate images
    counts = np.array([d.meta["label_counts"] for d in parts])
    assert counts.sum() == sum(len(d) for d in parts)
    share = counts / counts.sum(axis=1, keepdims=True)
    assert share.max(axis=1).mean() > 0.25  # alpha 0.5: dominant labels (IID would be ~0.1)
    iid = np.array([task.node_data(i, 10, 0, {**p, "alpha": 1000.0}).meta["label_counts"] for i in range(10)])
    assert (iid / iid.sum(axis=1, keepdims=True)).max(axis=1).mean() < 0.2
    again = task.node_data(3, 10, 0, p)
    assert torch.equal(again.x, parts[3].x) and torch.equal(again.y, parts[3].y)
    other = task.node_data(3, 10, 1, p)
    assert not (len(other) == len(parts[3]) and torch.equal(other.x, parts[3].x))
    assert all(len(d) >= 8 for d in parts)


def test_bad_arguments(task):
    with pytest.raises(ConfigError):
        task.node_data(5, 5, 0, {})
    with pytest.raises(ConfigError, match="alpha"):
        task.node_data(0, 5, 0, {"alpha": 0})
    with pytest.raises(ConfigError, match="too few"):
        task.node_data(0, 1000, 0, {})


def test_short_training_improves_accuracy(task):
    p = task.resolve_params(None)
    data = task.node_data(0, 1, 0, p)  # all training rows
    model = task.build_model(p, 0)
    before = task.evaluate(model, None, seed=0, params=p)
    assert set(before) == {"accuracy", "error", "loss"} and before["error"] == pytest.approx(1 - before["accuracy"])
    out = task.train(model, data, epochs=3, batch_size=32, lr=0.003, seed=1)
    after = task.evaluate(model, None, seed=0, params=p)
    assert out["steps"] == 3 * int(np.ceil(len(data) / 32))
    assert after["accuracy"] > 0.85 > before["accuracy"] and after["loss"] < before["loss"]
    again = task.build_model(p, 0)
    task.train(again, data, epochs=3, batch_size=32, lr=0.003, seed=1)
    assert task.evaluate(again, None, seed=0, params=p) == after  # deterministic
    assert task.evaluate(model, data)["accuracy"] >= after["accuracy"] - 0.05


def test_label_flip_poisoning(task):
    p = task.resolve_params(None)
    d = task.node_data(0, 5, 0, p)
    flipped = task.poison(d, {"fraction": 1.0}, np.random.default_rng(0))
    assert torch.equal(flipped.y, 9 - d.y)
    half = task.poison(d, {"fraction": 0.5}, np.random.default_rng(0))
    assert int((half.y != d.y).sum()) <= round(0.5 * len(d))


def test_federated_round_trip_through_the_codec(task):
    p = task.resolve_params(None)
    m = task.build_model(p, 0)
    arrays = state_dict_to_arrays(m)
    m2 = task.build_model(p, 1)
    load_arrays_into(m2, arrays)
    x = task.node_data(0, 5, 0, p).x[:4]
    assert torch.equal(m(x), m2(x))
