"""FedProx on the node side: Task.train(prox_mu) adds (mu/2)||w - w_start||^2, and the participant
takes mu from the round config's strategy params."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console

from fedchain.codec import encode_json, encode_tensors, state_dict_to_arrays
from fedchain.errors import ConfigError
from fedchain.tasks import load_task
from fedchain.tasks.base import NodeData, Task

TINY = {"train_days": 6, "val_days": 2, "quotes_scale": 0.05, "hidden": 8, "depth": 1}


@pytest.fixture(scope="module")
def task():
    return load_task("options-iv")


def trained(task, mu, *, epochs=3, lr=0.05, **kw):
    model = task.build_model(TINY, 0)
    start = {k: v.copy() for k, v in state_dict_to_arrays(model).items()}
    data = task.node_data(0, 3, 1, task.resolve_params(TINY))
    metrics = task.train(model, data, epochs=epochs, batch_size=32, lr=lr, seed=5, **kw, **({"prox_mu": mu} if mu is not None else {}))
    return start, state_dict_to_arrays(model), metrics


def distance(a, b):
    return float(np.sqrt(sum(((a[k].astype(np.float64) - b[k]) ** 2).sum() for k in a)))


def test_mu_zero_is_plain_training_to_the_bit(task):
    _, plain, m0 = trained(task, None)
    _, zero, m1 = trained(task, 0.0)
    assert encode_tensors(plain) == encode_tensors(zero) and m0 == m1


def test_a_large_mu_keeps_the_weights_near_the_start(task):
    start, plain, _ = trained(task, None)
    _, prox, metrics = trained(task, 10.0)
    assert distance(prox, start) < 0.5 * distance(plain, start)
    assert np.isfinite(metrics["loss"])
    _, again, _ = trained(task, 10.0)
    assert encode_tensors(again) == encode_tensors(prox)  # deterministic


def test_the_proximal_gradient_is_mu_times_the_displacement():
    class Const(Task):
        name = "const-test"

        def build_model(self, params, seed):
            return torch.nn.Linear(1, 1, bias=False)

        def node_data(self, shard, num_shards, seed, params):
            return NodeData(torch.zeros(4, 1), torch.zeros(4, 1))

        def evaluate(self, model, data=None, *, seed=0, params=None):
            return {"rmse": 0.0}

        def make_optimizer(self, model, lr):
            return torch.optim.SGD(model.parameters(), lr=lr)

    t = Const()
    t.warmup = 0.0  # constant rate from the first step
    data = NodeData(torch.ones(4, 1), torch.zeros(4, 1))  # loss = w^2, gradient 2w
    model = t.build_model({}, 0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    lr, mu = 0.1, 2.0
    t.train(model, data, epochs=1, batch_size=2, lr=lr, seed=0, prox_mu=mu)  # two SGD steps
    w0 = 1.0
    w1 = w0 - lr * 2 * w0  # the proximal term is zero at the start
    w2 = w1 - lr * (2 * w1 + mu * (w1 - w0))
    assert float(model.weight.detach()) == pytest.approx(w2, rel=1e-6)
    plain = t.build_model({}, 0)
    with torch.no_grad():
        plain.weight.fill_(1.0)
    t.train(plain, data, epochs=1, batch_size=2, lr=lr, seed=0)
    assert float(plain.weight.detach()) == pytest.approx(w1 - lr * 2 * w1, rel=1e-6)
    with pytest.raises(ConfigError, match="prox_mu"):
        t.train(model, data, epochs=1, batch_size=4, lr=0.1, seed=0, prox_mu=-1.0)


class _Stop(Exception):
    pass


def _participant_with(task, config):
    from node.participant import Participant

    model = task.build_model(TINY, 0)
    blobs = {"0xconfig": encode_json(config), "0xbase": encode_tensors(state_dict_to_arrays(model))}
    seen = {}

    class Recorder:
        def build_model(self, params, seed):
            return task.build_model(params, seed)

        def train(self, *args, **kwargs):
            seen.update(kwargs)
            raise _Stop

    p = object.__new__(Participant)
    p.api = SimpleNamespace(blob=lambda h, max_bytes: blobs[h])
    p.task_spec = "options-iv"
    p.task = Recorder()
    p.shard = 0
    p.hostile = None
    p._data = task.node_data(0, 2, 0, task.resolve_params(TINY))
    p._data_key = None  # loaded for any parameters
    p.data = lambda params: p._data
    p.me = "0x" + "11" * 20
    p.console = Console(file=io.StringIO())
    info = SimpleNamespace(round_id=1, config_hash="0xconfig", base_model_hash="0xbase", max_samples=10)
    return p, info, seen


@pytest.mark.parametrize("strategy,expected", [
    ({"name": "fedprox", "params": {"mu": 0.25}}, 0.25),
    ({"name": "fedavg", "params": {}}, None),
    (None, None),
])
def test_the_node_passes_mu_from_the_round_config(task, strategy, expected):
    config = {"version": 2, "task": "options-iv", "task_params": TINY, "training": {"epochs": 1}, "seed": 3}
    if strategy is not None:
        config["strategy"] = strategy
    p, info, seen = _participant_with(task, config)
    with pytest.raises(_Stop):
        p.participate(info)
    assert seen.get("prox_mu") == expected
