"""Record-level DP-SGD on a node (fedchain/tasks/dpsgd.py, Opacus): training, ε, determinism, accounting."""

from __future__ import annotations

import pytest
import torch

from fedchain.errors import ConfigError
from fedchain.tasks import NodeData, load_task

pytest.importorskip("opacus")  # requirements-nodeps.txt installs it; `make install` puts it in the venv

from fedchain.tasks.dpsgd import new_accountant, train_dp_sgd  # noqa: E402

SMALL = {"train_days": 30, "val_days": 6, "quotes_scale": 0.25, "hidden": 16, "depth": 2}
DP = {"batch_size": 64, "lr": 0.003, "noise_multiplier": 1.0, "max_grad_norm": 1.0}


@pytest.fixture(scope="module")
def task():
    return load_task("options-iv")


@pytest.fixture(scope="module")
def data(task):
    return task.node_data(0, 5, 0, SMALL)  # 750 quotes: 12 Poisson batches of expected size 64 per epoch


def _train(task, data, *, seed=0, epochs=1, **over):
    model = task.build_model(SMALL, 0)
    out = train_dp_sgd(task, model, data, epochs=epochs, seed=seed, **{**DP, **over})
    return model, out


def _bytes(model: torch.nn.Module) -> bytes:
    return b"".join(v.numpy().tobytes() for v in model.state_dict().values())


def test_dp_sgd_changes_the_weights_and_leaves_a_plain_module_with_the_same_state_dict_keys(task, data):
    start = task.build_model(SMALL, 0)
    model, _ = _train(task, data)
    assert type(model) is type(start)
    assert list(model.state_dict()) == list(start.state_dict())  # no "_module." prefix, nothing added
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))
    # no Opacus hooks or per-parameter attributes left behind
    assert not hasattr(model, "autograd_grad_sample_hooks")
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(not p.__dict__ and p.grad is None for p in model.parameters())
    assert not model.training


def test_dp_sgd_is_deterministic_for_a_seed_and_leaves_global_rng_and_threads_alone(task, data):
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    a, out_a = _train(task, data, seed=7)
    b, out_b = _train(task, data, seed=7)
    assert _bytes(a) == _bytes(b) and out_a == out_b
    c, _ = _train(task, data, seed=8)
    assert _bytes(c) != _bytes(a)
    assert torch.equal(rng, torch.random.get_rng_state()) and torch.get_num_threads() == threads


def test_report_has_the_training_keys_and_a_finite_epsilon_at_delta(task, data):
    calls = []
    _, out = _train(task, data, epochs=2, delta=1e-6, progress=lambda s, t: calls.append((s, t)))
    assert {"loss", "steps", "samples", "epochs"} <= set(out)
    assert out["steps"] == 24 and out["samples"] == len(data) and out["epochs"] == 2
    assert calls[-1] == (24, 24) and len(calls) == 24
    assert out["delta"] == 1e-6 and out["noise_multiplier"] == 1.0 and out["max_grad_norm"] == 1.0
    assert out["sample_rate"] == pytest.approx(1 / 12)
    assert 0 < out["epsilon"] < 100 and out["epsilon_total"] == out["epsilon"]
    assert torch.isfinite(torch.tensor(out["loss"]))


def test_epsilon_grows_with_epochs_with_less_noise_and_with_a_smaller_delta(task, data):
    one = _train(task, data, epochs=1)[1]["epsilon"]
    assert _train(task, data, epochs=2)[1]["epsilon"] > one
    assert _train(task, data, epochs=1, noise_multiplier=0.7)[1]["epsilon"] > one
    assert _train(task, data, epochs=1, delta=1e-7)[1]["epsilon"] > one
    # the clipping bound scales the noise with it, so it leaves ε unchanged
    assert _train(task, data, epochs=1, max_grad_norm=0.01)[1]["epsilon"] == one


def test_a_shared_accountant_reports_the_cumulative_epsilon_over_rounds(task, data):
    acc = new_accountant()
    first = _train(task, data, seed=1, accountant=acc)[1]
    second = _train(task, data, seed=2, accountant=acc)[1]
    assert first["epsilon_total"] == first["epsilon"]
    assert second["epsilon"] == pytest.approx(first["epsilon"])  # each call's own ε
    assert second["epsilon_total"] > second["epsilon"]
    # RDP composes by adding curves: two one-epoch rounds cost what one two-epoch call costs
    assert second["epsilon_total"] == pytest.approx(_train(task, data, epochs=2)[1]["epsilon"], rel=1e-9)
    assert acc.get_epsilon(1e-5) == pytest.approx(second["epsilon_total"])


def test_empty_poisson_batches_are_noise_only_steps_that_are_still_accounted(task, data):
    tiny = NodeData(data.x[:20], data.y[:20])  # expected batch 1: about a third of the batches are empty
    model, out = _train(task, tiny, batch_size=1)
    assert out["steps"] == 20 and out["sample_rate"] == pytest.approx(1 / 20)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


@pytest.mark.parametrize("bad", [{"noise_multiplier": 0.0}, {"max_grad_norm": -1.0}, {"delta": 1.0},
                                 {"noise_multiplier": float("nan")}, {"accountant": object()}])
def test_bad_privacy_parameters_are_config_errors(task, data, bad):
    with pytest.raises(ConfigError):
        _train(task, data, **bad)


def test_node_options_default_to_dp_sgd_off():
    from node.args import build_parser

    args = build_parser().parse_args([])
    assert (args.dp_sgd, args.dp_noise_multiplier, args.dp_max_grad_norm, args.dp_delta) == (False, 1.0, 0.003, 1e-5)
    on = build_parser().parse_args(["--dp-sgd", "--dp-noise-multiplier", "1.5", "--dp-delta", "1e-6"])
    assert on.dp_sgd and on.dp_noise_multiplier == 1.5 and on.dp_delta == 1e-6
    for bad in (["--dp-noise-multiplier", "0"], ["--dp-max-grad-norm", "inf"], ["--dp-delta", "1"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
