"""The attack harness: in simulation (``run_baseline``), as a real node (``Hostile``), and the
command-line plumbing of ``fedchain node``, ``fedchain demo`` and ``fedchain baseline``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from fedchain.attacks import flatten
from fedchain.attacks.estimate import SharedFolder, subsample_deltas
from fedchain.attacks.process import Hostile
from fedchain.codec import state_dict_to_arrays
from fedchain.errors import ConfigError
from fedchain.tasks import load_task
from fedchain.tasks.baseline import run_baseline

TINY = {"hidden": 8, "depth": 1}
TRAIN = {"epochs": 1, "batch_size": 64, "lr": 0.01}


def _run(**kw):
    return run_baseline("digits", seed=0, nodes=5, rounds=2, progress=False, params=TINY, training=TRAIN,
                        references=False, **kw)


def test_baseline_clean_run_is_unchanged_by_the_harness():
    a = _run()
    b = _run(attack="none")
    assert a["federated"] == b["federated"] and a["attack"] is None and a["byzantine"] == 0
    assert a["strategy"] == {"name": "fedavg", "params": {}}


def test_baseline_attacks_change_the_result_and_are_deterministic():
    clean = _run()["federated"]["loss"]
    flip = _run(attack="sign_flip", byzantine=2)
    assert flip["hostile_shards"] == [3, 4] and flip["attack"]["name"] == "sign_flip"
    assert flip["federated"]["loss"] != clean
    assert _run(attack="sign_flip", byzantine=2)["federated"] == flip["federated"]
    for name in ("alie", "ipm", "min_max", "min_sum", "noise", "data_poison", "scaling"):
        assert _run(attack=name, byzantine=1)["federated"]["loss"] != clean, name


def test_baseline_inflated_samples_take_the_weight_under_fedavg():
    r = _run(attack="inflate", byzantine=1)
    assert r["hostile_weight"]["last"] > 0.99
    capped = _run(attack="inflate", byzantine=1, max_samples=300)
    assert capped["hostile_weight"]["last"] < 0.5


def test_baseline_rejects_bad_harness_arguments():
    with pytest.raises(ConfigError, match="byzantine"):
        _run(attack="alie", byzantine=5)
    with pytest.raises(ConfigError, match="--attack"):
        _run(byzantine=1)
    with pytest.raises(ConfigError, match="unknown attack"):
        _run(attack="nope", byzantine=1)
    with pytest.raises(ConfigError, match="unknown aggregation strategy"):
        _run(strategy="nope")


def test_subsample_estimates_are_deterministic_and_differ():
    task = load_task("digits")
    params = task.resolve_params(TINY)
    data = task.node_data(0, 5, 0, params)
    base = state_dict_to_arrays(task.build_model(params, 0))
    kw = dict(training=TRAIN, seed=5, k=3, frac=0.5)
    a = subsample_deltas(task, lambda: task.build_model(params, 0), base, data, **kw)
    b = subsample_deltas(task, lambda: task.build_model(params, 0), base, data, **kw)
    assert a.shape == (3, flatten(base).size) and np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1]) and np.all(np.abs(a).sum(axis=1) > 0)


def test_hostile_forges_a_well_formed_update():
    task = load_task("digits")
    params = task.resolve_params(TINY)
    data = task.node_data(4, 5, 0, params)
    model = task.build_model(params, 0)
    base = state_dict_to_arrays(model)
    task.train(model, data, seed=1, **TRAIN)
    trained = state_dict_to_arrays(model)
    kw = dict(task=task, make_model=lambda: task.build_model(params, 0), base=base, trained=trained, data=data,
              training=TRAIN, seed=3, round_id=1, me="0xabc")
    flip = Hostile("sign_flip", [], num_shards=5).forge(**kw)
    assert set(flip) == set(base) and all(flip[k].dtype == np.float32 and flip[k].shape == base[k].shape for k in base)
    assert np.allclose(flatten(flip) - flatten(base), -(flatten(trained) - flatten(base)), atol=1e-6)
    alie = Hostile("alie", ["estimate_k=3", "f=1"], num_shards=5)
    assert alie.n == 5 and alie.f == 1 and alie.estimate_k == 3 and "subsamples" in alie.describe()
    out = alie.forge(**kw)
    assert np.array_equal(flatten(out), flatten(alie.forge(**kw)))  # deterministic given the seed
    assert not np.array_equal(flatten(out), flatten(trained))
    same = Hostile("inflate", [], num_shards=5)
    assert same.forge(**kw) == dict(trained) and same.claim(100, 5000) == 5000
    with pytest.raises(ConfigError):
        Hostile("alie", ["estimate_frac=0"], num_shards=5)
    with pytest.raises(ConfigError, match="no parameter"):
        Hostile("alie", ["zz=1"], num_shards=5)


def test_shared_folder_exchange(tmp_path: Path):
    a = SharedFolder(tmp_path, wait_seconds=0.0)
    got = a.exchange(1, "0xaa", np.ones(3), expect=1)
    assert got.shape == (1, 3)
    got = a.exchange(1, "0xbb", np.zeros(3), expect=2)
    assert got.shape == (2, 3) and sorted(got.sum(axis=1).tolist()) == [0.0, 3.0]
    assert a.exchange(2, "0xaa", np.ones(3), expect=5).shape == (1, 3)  # bounded wait, own round only


def test_node_arguments():
    from node.args import build_parser
    from node.participant import hostile_from_args

    args = build_parser().parse_args(["--attack", "scaling", "--attack-param", "k=3", "--num-shards", "4"])
    assert args.attack == "scaling" and args.attack_param == ["k=3"]
    h = hostile_from_args(args)
    assert h.name == "scaling" and h.attack["k"] == 3.0 and h.n == 4
    assert hostile_from_args(build_parser().parse_args([])) is None
    with pytest.raises(ConfigError, match="unknown attack"):
        hostile_from_args(build_parser().parse_args(["--attack", "bogus"]))


def test_demo_arguments_and_node_commands(tmp_path: Path):
    from fedchain.cli import build_parser
    from fedchain.demo import _strategy_params, hostile_plan, node_command

    args = build_parser().parse_args(["demo", "--nodes", "10", "--byzantine", "2", "--attack", "alie",
                                      "--strategy", "fedavg"])
    k, attack, pairs = hostile_plan(args, 10, tmp_path)
    assert (k, attack) == (2, "alie") and "n=10" in pairs and "f=2" in pairs
    assert f"collude_dir={tmp_path / 'collude'}" in pairs
    cmd = node_command(rpc_url="r", api_url="a", dev_index=9, shard=8, num_shards=10, task="digits", rounds=1,
                       attack=attack, attack_params=pairs)
    assert cmd[cmd.index("--attack") + 1] == "alie" and cmd.count("--attack-param") == len(pairs)
    honest = node_command(rpc_url="r", api_url="a", dev_index=1, shard=0, num_shards=10, task="digits", rounds=1)
    assert "--attack" not in honest
    plain = build_parser().parse_args(["demo"])
    assert hostile_plan(plain, 5, tmp_path) == (0, None, []) and _strategy_params(plain) == {}
    for bad in (["--byzantine", "2"], ["--attack", "alie"], ["--byzantine", "10", "--attack", "alie"],
                ["--byzantine", "1", "--attack", "scaling", "--attack-param", "nope=1"]):
        with pytest.raises(ConfigError):
            hostile_plan(build_parser().parse_args(["demo", "--nodes", "10", *bad]), 10, tmp_path)
    with pytest.raises(ConfigError):
        _strategy_params(build_parser().parse_args(["demo", "--strategy-param", "x=1"]))


def test_baseline_command_line(tmp_path: Path, capsys):
    import json

    from fedchain.cli import main

    out = tmp_path / "b.json"
    assert main(["baseline", "--task", "digits", "--nodes", "4", "--rounds", "1", "--byzantine", "1", "--attack",
                 "scaling", "--attack-param", "k=2", "--federated-only", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["attack"] == {"name": "scaling", "params": {"k": 2.0}} and r["byzantine"] == 1 and "centralised" not in r
    assert main(["baseline", "--task", "digits", "--nodes", "4", "--rounds", "1", "--attack", "scaling",
                 "--byzantine", "9"]) != 0
