"""Every option of every command has help, and every option with a default shows it."""

from __future__ import annotations

import argparse

import pytest

from fedchain.cli import build_parser
from fedchain.cliutil import HelpFormatter, positive_int
from node.args import build_parser as node_parser

#: Options hidden on purpose (a raw key on the command line ends up in shell history).
HIDDEN = {"--private-key"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    root = build_parser()
    subs = _subparsers(root)
    assert {"chain", "deploy", "admit", "new-key", "aggregator", "node", "rounds", "verify", "demo",
            "baseline"} <= set(subs)
    return [("fedchain", root), *((f"fedchain {name}", p) for name, p in subs.items()),
            ("python -m node", node_parser())]


COMMANDS = _commands()


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_option_has_help_and_shows_its_default(name, parser):
    missing, no_default = [], []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = "/".join(action.option_strings) or action.dest
        if action.help is argparse.SUPPRESS:
            if not set(action.option_strings) & HIDDEN:
                missing.append(f"{label} (suppressed)")
            continue
        if not action.help or not action.help.strip():
            missing.append(label)
            continue
        if (action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS)
                and "%(default)" not in action.help):
            text = parser.formatter_class(prog="x")._get_help_string(action)
            if "(default:" not in text:
                no_default.append(label)
    assert not missing, f"{name}: options without help: {missing}"
    assert not no_default, f"{name}: options whose default is not shown: {no_default}"
    assert issubclass(parser.formatter_class, HelpFormatter), f"{name} does not use the defaults formatter"


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_help_renders(name, parser):
    text = parser.format_help()
    assert "usage:" in text and "(default: None)" not in text


def test_help_shows_no_meaningless_default():
    text = _subparsers(build_parser())["verify"].format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "FEDCHAIN_RPC_URL" in text and "deployments/<chainId>.json" in text


def test_counts_are_refused_by_the_parser():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--nodes", "0"])
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("-1")
    assert build_parser().parse_args(["demo", "--nodes", "3"]).nodes == 3


def test_node_parser_takes_idle_exit():
    args = node_parser().parse_args(["--dev-account", "1", "--idle-exit", "5"])
    assert args.idle_exit == 5.0
    assert node_parser().parse_args([]).idle_exit > 0
