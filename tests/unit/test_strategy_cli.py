"""`fedchain aggregator --strategy NAME --strategy-param KEY=VALUE`: parsing, the checks before
anything connects, and the factory passing the parameters to the Aggregator."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

import fedchain.cli as cli
from fedchain.errors import ConfigError


def run(monkeypatch, capsys, *argv):
    seen = {}

    def fake_cmd(args):
        seen["args"] = args
        return 0

    monkeypatch.setattr(cli, "cmd_aggregator", fake_cmd)
    rc = cli.main(["aggregator", *argv])
    out = capsys.readouterr()
    return rc, out, seen.get("args")


def test_values_are_parsed_as_json_else_strings():
    assert cli.parse_strategy_params(["beta=0.2", "f=2", "start=zero", "flag=true", "m=null",
                                      'pre=[{"name": "clip", "c": 1.5}]', "s= 3 "]) == {
        "beta": 0.2, "f": 2, "start": "zero", "flag": True, "m": None,
        "pre": [{"name": "clip", "c": 1.5}], "s": 3}
    assert cli.parse_strategy_params(None) == {} and cli.parse_strategy_params([]) == {}
    for bad in ("beta", "=1", ""):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            cli.parse_strategy_params([bad])


def test_good_strategy_and_params_reach_the_command(monkeypatch, capsys):
    rc, _, args = run(monkeypatch, capsys, "--strategy", "trimmed_mean", "--strategy-param", "beta=0.2")
    assert rc == 0 and args.strategy == "trimmed_mean" and args.strategy_params == {"beta": 0.2}
    rc, _, args = run(monkeypatch, capsys)
    assert rc == 0 and args.strategy == "fedavg" and args.strategy_params == {}


@pytest.mark.parametrize("argv,needles", [
    (["--strategy", "nope"], ["unknown aggregation strategy 'nope'", "known:", "krum", "trimmed_mean"]),
    (["--strategy", "trimmed_mean", "--strategy-param", "gamma=1"], ["has no parameter 'gamma'", "beta"]),
    (["--strategy", "krum", "--strategy-param", "f=-1"], ["parameter f must be an integer in [0, inf)"]),
    (["--strategy", "median", "--strategy-param", "oops"], ["expected KEY=VALUE"]),
])
def test_bad_strategy_or_param_is_one_error_and_a_nonzero_exit(monkeypatch, capsys, argv, needles):
    rc, out, args = run(monkeypatch, capsys, *argv)
    assert rc != 0 and args is None  # refused before the command ran (nothing connected)
    text = " ".join(out.err.split())  # rich may wrap the line at the console width
    assert text.startswith("error:") and "Traceback" not in out.err + out.out
    for n in needles:
        assert n in text


def test_help_describes_both_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["aggregator", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--strategy NAME" in text and "centered_clip" in text and "docs/strategies.md" in text
    assert "--strategy-param KEY=VALUE" in text and "repeatable" in text and "JSON" in text


def test_the_factory_passes_strategy_params_to_the_aggregator(monkeypatch):
    import fedchain.aggregator.factory as factory

    got = {}

    class FakeAggregator:
        def __init__(self, *a, **kw):
            got.update(kw)

    monkeypatch.setattr(factory, "Aggregator", FakeAggregator)
    monkeypatch.setattr(factory, "load_task", lambda spec: SimpleNamespace(name=spec))
    args = argparse.Namespace(task="options-iv", strategy="krum", strategy_params={"f": 2}, seed=0)
    s = SimpleNamespace(max_blob_bytes=1 << 20, poll_interval=0.1)
    api = SimpleNamespace(indexer=SimpleNamespace(uploads_for=None, sync=None))
    factory.build_aggregator(args, s, None, None, api, log=print)
    assert got["strategy"] == "krum" and got["strategy_params"] == {"f": 2}
