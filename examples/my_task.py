"""A minimal user task (the example in docs/tasks.md; tested by tests/unit/test_tasks_loader.py).

Each node holds readings from one sensor site: y = 2 x0 - x1 + 0.5 x0 x1 + noise, where every site
sees a different range of x0. Run it with:

    fedchain demo --task examples.my_task:task        # from the repository root
    fedchain demo --task path/to/my_task.py:task      # from anywhere
"""

from __future__ import annotations

import numpy as np
import torch

from fedchain.tasks import NodeData, Task, regression_metrics


def _sample(rng: np.random.Generator, n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.uniform(lo, hi, n), rng.uniform(-1.0, 1.0, n)])
    y = 2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 0] * x[:, 1] + rng.normal(0.0, 0.1, n)
    return x.astype(np.float32), y.astype(np.float32).reshape(-1, 1)


class SensorTask(Task):
    name = "sensors"
    feature_columns = ("x0", "x1")  # lets `fedchain node --data site.csv` read x0,x1,y columns
    target_columns = ("y",)

    def default_params(self) -> dict:
        return {"hidden": 16, "rows": 400}

    def default_training(self) -> dict:
        return {"epochs": 5, "batch_size": 32, "lr": 0.01}

    def build_model(self, params: dict, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)  # same seed, same initial weights
        h = self.resolve_params(params)["hidden"]
        return torch.nn.Sequential(torch.nn.Linear(2, h), torch.nn.Tanh(), torch.nn.Linear(h, 1))

    def node_data(self, shard: int, num_shards: int, seed: int, params: dict) -> NodeData:
        rng = np.random.default_rng([seed, shard])  # deterministic per (seed, shard)
        lo = -2.0 + 4.0 * shard / num_shards  # site i sees its own slice of x0
        x, y = _sample(rng, self.resolve_params(params)["rows"], lo, lo + 4.0 / num_shards)
        return NodeData(torch.from_numpy(x), torch.from_numpy(y), {"shard": shard, "site": f"site-{shard}"})

    def evaluate(self, model, data=None, *, seed=0, params=None) -> dict[str, float]:
        if data is None:  # the global held-out set: the whole x0 range
            x, y = _sample(np.random.default_rng([seed, 10**6]), 2000, -2.0, 2.0)
            data = NodeData(torch.from_numpy(x), torch.from_numpy(y))
        return regression_metrics(self.predict(model, data.x), data.y)  # rmse, mae, max_abs_err


task = SensorTask()
