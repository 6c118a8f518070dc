"""load_task: built-in names, user tasks by module:attribute or file path, and clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fedchain.errors import ConfigError
from fedchain.tasks import BUILTIN_TASKS, NodeData, Task, load_task
from fedchain.tasks.options_iv import OptionsIVTask

REPO = Path(__file__).resolve().parents[2]

USER_MODULE = """
import torch
from fedchain.tasks import NodeData, Task, regression_metrics

class Mean(Task):
    name = "mean"
    def build_model(self, params, seed):
        torch.manual_seed(seed)
        return torch.nn.Linear(1, 1)
    def node_data(self, shard, num_shards, seed, params):
        g = torch.Generator().manual_seed(seed * 100 + shard)
        x = torch.rand(50, 1, generator=g)
        return NodeData(x, 3 * x + 1, {"shard": shard})
    def evaluate(self, model, data=None, *, seed=0, params=None):
        data = data or self.node_data(0, 1, seed + 1, params or {})
        return regression_metrics(self.predict(model, data.x), data.y)

instance = Mean()
def factory():
    return Mean()
def bad_factory():
    return 42
not_a_task = "hello"
class NotTask:
    pass
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "fc_user_tasks.py").write_text(USER_MODULE)
    (tmp_path / "fc_broken_task.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("fc_user_tasks", "fc_broken_task"):
        sys.modules.pop(name, None)


def test_builtin_by_name():
    task = load_task("options-iv")
    assert isinstance(task, OptionsIVTask) and task.name == "options-iv"
    assert BUILTIN_TASKS["options-iv"] is OptionsIVTask
    assert task.primary_metric == "rmse"


@pytest.mark.parametrize("attr", ["instance", "Mean", "factory"])
def test_user_task_by_module_attribute(user_dir, attr):
    task = load_task(f"fc_user_tasks:{attr}")
    assert isinstance(task, Task) and task.name == "mean"


def test_user_task_by_file_path(user_dir):
    task = load_task(f"{user_dir / 'fc_user_tasks.py'}:instance")
    assert task.name == "mean"


def test_example_from_docs_runs_end_to_end(monkeypatch):
    """examples/my_task.py is the docs/tasks.md example: load it as a user would and train it."""
    monkeypatch.syspath_prepend(str(REPO))
    task = load_task("examples.my_task:task")
    assert task.name == "sensors"
    params = task.default_params()
    model = task.build_model(params, 0)
    before = task.evaluate(model, None, seed=0, params=params)["rmse"]
    shards = [task.node_data(i, 3, 0, params) for i in range(3)]
    assert not np.allclose(shards[0].x[:, 0].mean(), shards[2].x[:, 0].mean())  # non-IID sites
    for d in shards:
        task.train(model, d, seed=1, **task.default_training())
    after = task.evaluate(model, None, seed=0, params=params)
    assert after["rmse"] < before
    # the same file, loaded by path from another folder
    monkeypatch.chdir("/")
    assert load_task(f"{REPO / 'examples' / 'my_task.py'}:task").name == "sensors"


def test_module_path_resolves_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "fc_cwd_task.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert load_task("fc_cwd_task:instance").name == "mean"
    finally:
        sys.modules.pop("fc_cwd_task", None)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no-such-task", "unknown task"),
        ("", "no task given"),
        ("fc_no_such_module_xyz:task", "cannot import module"),
        ("fc_user_tasks:missing", "has no attribute"),
        ("fc_user_tasks:not_a_task", "not a Task"),
        ("fc_user_tasks:NotTask", "not a fedchain.tasks.Task subclass"),
        ("fc_user_tasks:bad_factory", "returned int"),
        ("fc_broken_task:task", "boom at import"),
        ("/no/such/file.py:task", "does not exist"),
        (":task", "bad task path"),
    ],
)
def test_loader_errors_are_config_errors_with_hints(user_dir, spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_task(spec)
    if message in ("unknown task", "no task given"):
        assert "options-iv" in info.value.hint


def test_minimal_task_gets_generic_training_and_defaults():
    class Tiny(Task):
        def build_model(self, params, seed):
            return torch.nn.Linear(2, 1)

        def node_data(self, shard, num_shards, seed, params):
            x = torch.ones(10, 2)
            return NodeData(x, x.sum(1, keepdim=True))

        def evaluate(self, model, data=None, *, seed=0, params=None):
            return {"rmse": 0.0}

    t = Tiny()
    assert t.name == "Tiny" and t.default_training()["epochs"] >= 1 and t.default_params() == {}
    out = t.train(t.build_model({}, 0), t.node_data(0, 1, 0, {}), epochs=2, batch_size=4, lr=0.01, seed=0)
    assert out["steps"] == 6 and out["samples"] == 10
    with pytest.raises(ConfigError, match="cannot read data files"):
        t.load_data_file("x.csv", {})
    with pytest.raises(ConfigError):
        NodeData(torch.ones(3, 2), torch.ones(2, 1))
