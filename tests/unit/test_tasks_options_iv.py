"""The built-in options-iv task: determinism, the non-IID venue split, metrics, data files."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from fedchain.errors import ConfigError
from fedchain.tasks import NodeData, load_task, write_csv
from fedchain.tasks.options_iv import market
from fedchain.tasks.options_iv import task as task_module

SMALL = {"train_days": 30, "val_days": 6, "quotes_scale": 0.25, "hidden": 16, "depth": 2}


@pytest.fixture(scope="module")
def task():
    return load_task("options-iv")


def _clear_caches() -> None:
    market.market_days.cache_clear()
    market.validation_grid.cache_clear()
    task_module._venue_arrays.cache_clear()
    task_module._arb_grid.cache_clear()


def _z_and_tenor(data: NodeData) -> tuple[np.ndarray, np.ndarray]:
    x = data.x.double().numpy()
    k, t, atm = x[:, 0], x[:, 1], x[:, 2]
    return k / (atm * np.sqrt(t)), t * market.DAYS_PER_YEAR


# --- determinism ----------------------------------------------------------------------------------
def test_node_data_is_deterministic_for_a_seed(task):
    a = task.node_data(2, 5, 11, SMALL)
    _clear_caches()  # regenerate from scratch, not from the in-process cache
    b = task.node_data(2, 5, 11, SMALL)
    assert a.x.numpy().tobytes() == b.x.numpy().tobytes()
    assert a.y.numpy().tobytes() == b.y.numpy().tobytes()
    c = task.node_data(2, 5, 12, SMALL)
    assert not torch.equal(a.y, c.y)


def test_shard_data_does_not_depend_on_the_number_of_shards(task):
    assert torch.equal(task.node_data(1, 3, 0, SMALL).y, task.node_data(1, 5, 0, SMALL).y)


def test_validation_set_is_deterministic_and_separate_from_training_days(task):
    v1 = task.validation_data(5, SMALL)
    _clear_caches()
    v2 = task.validation_data(5, SMALL)
    assert v1.x.numpy().tobytes() == v2.x.numpy().tobytes() and torch.equal(v1.y, v2.y)
    train_state = market.market_days(5, "train", SMALL["train_days"]).state
    val_state = market.market_days(5, "val", SMALL["val_days"]).state
    assert not any(np.allclose(v, t) for v in val_state for t in train_state)


def test_model_init_and_training_are_deterministic(task):
    data = task.node_data(0, 5, 0, SMALL)

    def run(model_seed: int, train_seed: int) -> dict[str, torch.Tensor]:
        m = task.build_model(SMALL, model_seed)
        task.train(m, data, epochs=1, batch_size=64, lr=0.003, seed=train_seed)
        return m.state_dict()

    a, b = run(0, 1), run(0, 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = run(0, 2)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    d0, d1 = task.build_model(SMALL, 0).state_dict(), task.build_model(SMALL, 1).state_dict()
    assert not all(torch.equal(d0[k], d1[k]) for k in d0)


def test_train_leaves_global_rng_and_threads_alone(task):
    data = task.node_data(0, 5, 0, SMALL)
    m = task.build_model(SMALL, 0)
    threads = torch.get_num_threads()
    before = torch.random.get_rng_state()
    calls = []
    task.train(m, data, epochs=1, batch_size=128, lr=0.003, seed=0, progress=lambda s, t: calls.append((s, t)))
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads
    assert calls[-1][0] == calls[-1][1] == len(calls)


# --- the non-IID split ----------------------------------------------------------------------------
def test_venues_cover_their_own_regions_of_the_surface(task):
    for shard in range(5):
        venue = market.venue_for(shard)
        data = task.node_data(shard, 5, 0, SMALL)
        z, tenor = _z_and_tenor(data)
        assert tenor.min() >= venue.tenor_days[0] - 1e-6 and tenor.max() <= venue.tenor_days[1] + 1e-6
        zz = np.abs(z) if venue.abs_z else z
        assert zz.min() >= venue.z[0] - 1e-3 and zz.max() <= venue.z[1] + 1e-3
        assert data.meta["venue"] == venue.name and data.meta["shard"] == shard


def test_venues_differ_as_designed(task):
    data = [task.node_data(i, 5, 0, {}) for i in range(5)]
    cov = [_z_and_tenor(d) for d in data]
    short, long_, wings = cov[0], cov[1], cov[2]
    assert short[1].max() <= 30 + 1e-4 and long_[1].min() >= 45 - 1e-4  # short-dated vs long-dated (float32 x)
    assert np.median(np.abs(short[0])) < 0.7 and np.abs(wings[0]).min() >= 1.2  # near the money vs wings
    assert (cov[3][0] < 0).mean() > 0.8 and (cov[4][0] > 0).all()  # put side vs call side
    counts = [len(d) for d in data]
    assert len(set(counts)) >= 3 and counts == [v.quotes for v in market.VENUES]
    # quote noise: observed scatter around the true vol matches each venue's bid-ask noise
    for shard in range(5):
        q = market.venue_quotes(0, shard, 120)
        noise = float(np.std(q["iv"] - q["iv_true"]) * 100)
        assert noise == pytest.approx(market.venue_for(shard).noise_vol, rel=0.1)
    noises = [v.noise_vol for v in market.VENUES]
    assert max(noises) / min(noises) >= 3


def test_together_the_venues_cover_the_held_out_surface():
    for tenor in market.VAL_TENORS:
        for z in market.VAL_Z:
            assert any(
                v.tenor_days[0] <= tenor <= v.tenor_days[1]
                and v.z[0] - 1e-9 <= (abs(z) if v.abs_z else z) <= v.z[1] + 1e-9
                for v in market.VENUES
            ), (tenor, z)


def test_venues_cycle_beyond_five_shards(task):
    d = task.node_data(7, 8, 0, SMALL)
    assert d.meta["venue"].startswith(market.VENUES[2].name) and d.meta["venue"] != market.VENUES[2].name
    assert not torch.equal(d.y[:10], task.node_data(2, 8, 0, SMALL).y[:10])


def test_shard_out_of_range(task):
    with pytest.raises(ConfigError):
        task.node_data(5, 5, 0, SMALL)
    with pytest.raises(ConfigError):
        task.node_data(0, 0, 0, SMALL)
    with pytest.raises(ConfigError):
        task.build_model({"hidden": 0}, 0)


# --- ground truth and metrics ---------------------------------------------------------------------
def test_market_levels_are_crypto_like():
    days = market.market_days(0, "train", 120)
    atm = days.state[:, 0]
    assert 0.3 < atm.min() and atm.max() < 1.2
    rr = days.state[:, 3]
    assert (rr > 0).any() and (rr < 0).any()  # skew of either sign
    term = days.state[:, 2]
    assert (term > 0).any() and (term < 0).any()  # contango and backwardation


def test_evaluate_reports_vol_point_metrics_and_arbitrage(task):
    m = task.build_model(SMALL, 0)
    out = task.evaluate(m, None, seed=0, params=SMALL)
    for key in ("rmse", "mae", "max_abs_err", "arb_share", "butterfly_share", "calendar_share"):
        assert key in out and np.isfinite(out[key])
    assert 0.5 < out["rmse"] < 20  # vol points, not decimals
    on_data = task.evaluate(m, task.node_data(0, 5, 0, SMALL))
    assert set(on_data) == {"rmse", "mae", "max_abs_err"}


def test_true_surfaces_are_arbitrage_free_and_bad_ones_are_caught(task):
    assert task.arbitrage(None, seed=0, params=SMALL) == {"arb_share": 0.0, "butterfly_share": 0.0,
                                                          "calendar_share": 0.0}

    class Inverted(torch.nn.Module):  # vol falling fast with tenor: total variance decreases
        def forward(self, x):
            return (0.9 - 0.8 * torch.sqrt(x[:, 1:2])).clamp(min=0.05)

    class Spiky(torch.nn.Module):  # a sawtooth in strike: call prices not convex
        def forward(self, x):
            return 0.6 + 0.15 * torch.sign(torch.sin(80 * x[:, 0:1]))

    assert task.arbitrage(Inverted(), seed=0, params=SMALL)["calendar_share"] == 1.0
    assert task.arbitrage(Spiky(), seed=0, params=SMALL)["butterfly_share"] == 1.0


def test_perfect_model_scores_zero_on_the_held_out_set(task):
    val = task.validation_data(0, SMALL)

    class Lookup(torch.nn.Module):
        def forward(self, x):
            assert torch.equal(x, val.x)
            return val.y

    out = task.evaluate(Lookup(), val)
    assert out["rmse"] == 0 and out["max_abs_err"] == 0


# --- data files -----------------------------------------------------------------------------------
def test_csv_round_trip(task, tmp_path):
    d = task.node_data(3, 5, 0, SMALL)
    cols = {name: d.x[:, i].numpy() for i, name in enumerate(market.FEATURES)}
    cols[market.TARGET] = d.y[:, 0].numpy()
    path = write_csv(tmp_path / "venue.csv", cols)
    back = task.load_data_file(path, SMALL)
    assert torch.equal(back.x, d.x) and torch.equal(back.y, d.y)


def test_data_file_errors(task, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        task.load_data_file(tmp_path / "nope.csv", {})
    bad = tmp_path / "bad.csv"
    bad.write_text("log_moneyness,iv\n0.1,0.5\n")
    with pytest.raises(ConfigError, match="lacks column"):
        task.load_data_file(bad, {})
    with pytest.raises(ConfigError, match="unsupported"):
        (tmp_path / "x.json").write_text("{}")
        task.load_data_file(tmp_path / "x.json", {})
    pq = tmp_path / "x.parquet"
    pq.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyarrow"):
            task.load_data_file(pq, {})
    else:
        with pytest.raises(ConfigError):
            task.load_data_file(pq, {})


# --- budgets --------------------------------------------------------------------------------------
def test_default_sizes_fit_the_time_budget(task):
    _clear_caches()
    p = task.default_params()
    t0 = time.perf_counter()
    data = task.node_data(0, 5, 99, p)
    t1 = time.perf_counter()
    task.validation_data(99, p)
    t2 = time.perf_counter()
    m = task.build_model(p, 0)
    task.train(m, data, seed=0, **task.default_training())
    t3 = time.perf_counter()
    task.evaluate(m, None, seed=99, params=p)
    t4 = time.perf_counter()
    # budgets are 2 s / 2 s / 3 s / 0.5 s on one free core; allow for a busy machine
    assert t1 - t0 < 6 and t2 - t1 < 6 and t3 - t2 < 9 and t4 - t3 < 2, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
