"""fedchain baseline: centralised vs local-only vs federated, with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedchain.errors import ConfigError
from fedchain.tasks.baseline import run_baseline

REPO = Path(__file__).resolve().parents[2]
TINY_PARAMS = {"train_days": 12, "val_days": 3, "quotes_scale": 0.05, "hidden": 8, "depth": 1}
TINY_TRAINING = {"epochs": 1, "batch_size": 64, "lr": 0.01}


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    result = run_baseline("options-iv", seed=3, nodes=3, rounds=2, progress=False, plot_path=out / "surface.png",
                          params=TINY_PARAMS, training=TINY_TRAINING)
    return result, out


def test_baseline_reports_the_three_models(tiny_result):
    result, out = tiny_result
    path = out / "baseline.json"
    path.write_text(json.dumps(result))  # what `fedchain baseline --json` writes: plain JSON
    loaded = json.loads(path.read_text())
    assert loaded["task"] == "options-iv" and loaded["seed"] == 3 and loaded["nodes"] == 3 and loaded["rounds"] == 2
    for key in ("centralised", "federated"):
        assert loaded[key]["rmse"] > 0
    assert [x["shard"] for x in loaded["local_only"]] == [0, 1, 2]
    assert all(x["rmse"] > 0 and x["venue"] for x in loaded["local_only"])
    targets = loaded["targets"]
    assert set(targets) >= {"federated_vs_centralised", "federated_vs_median_local", "met"}
    assert targets["federated_vs_centralised"] == pytest.approx(loaded["federated"]["rmse"] / loaded["centralised"]["rmse"])
    assert [h["round"] for h in loaded["history"]] == [1, 2]
    # one step budget: federated total steps == sum of local-only steps; centralised within batch rounding
    assert loaded["federated"]["steps"] == sum(x["steps"] for x in loaded["local_only"])
    assert abs(loaded["centralised"]["steps"] - loaded["federated"]["steps"]) <= 2 * 3 * loaded["rounds"]


def test_baseline_is_deterministic(tiny_result):
    result, _ = tiny_result
    again = run_baseline("options-iv", seed=3, nodes=3, rounds=2, progress=False, params=TINY_PARAMS,
                         training=TINY_TRAINING)
    for key in ("centralised", "federated"):
        assert again[key]["rmse"] == result[key]["rmse"]
    assert [x["rmse"] for x in again["local_only"]] == [x["rmse"] for x in result["local_only"]]


def test_plot_file_written(tiny_result):
    result, out = tiny_result
    png = out / "surface.png"
    assert result["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_baseline_runs_a_user_task(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    result = run_baseline("examples.my_task:task", seed=0, nodes=2, rounds=2, progress=False)
    assert result["task"] == "examples.my_task:task" and len(result["local_only"]) == 2
    with pytest.raises(ConfigError, match="options-iv"):
        run_baseline("examples.my_task:task", nodes=2, rounds=1, progress=False, plot_path=Path("/tmp/never.png"))


def test_baseline_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        run_baseline(nodes=0, progress=False)
    with pytest.raises(ConfigError):
        run_baseline(rounds=0, progress=False)
