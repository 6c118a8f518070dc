"""Parameter checking shared by the strategies.

A rule declares its parameters as a dict of :class:`Param` (name -> kind, default, allowed range).
:func:`check_params` fills in the defaults and rejects anything else with a :class:`ConfigError`
that names the rule, the parameter and what is allowed, so a round config records every value the
merge used (the config is committed on-chain, and ``verify`` rebuilds the rule from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fedchain.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter. ``kind`` is ``"int"``, ``"float"``, ``"str"``, ``"int_or_null"`` or ``"any"``
    (checked by ``check``). Numeric bounds: ``lo``/``hi`` with ``lo_open``/``hi_open`` for strict."""

    kind: str
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    check: Callable[[str, Any], Any] | None = None

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {"int": "an integer", "float": "a number", "int_or_null": "an integer or null",
                "str": "a string", "any": "a value"}[self.kind]
        if self.lo is None and self.hi is None:
            return what
        left = ("[" + _num(self.lo) if not self.lo_open else "(" + _num(self.lo)) if self.lo is not None else "(-inf"
        right = (_num(self.hi) + ("]" if not self.hi_open else ")")) if self.hi is not None else "inf)"
        return f"{what} in {left}, {right}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def check_params(rule: str, given: Mapping[str, Any] | None, spec: Mapping[str, Param]) -> dict[str, Any]:
    """``given`` checked against ``spec`` with the defaults filled in (a new dict, JSON-able)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        known = ", ".join(sorted(spec)) or "none"
        raise ConfigError(f"strategy {rule} has no parameter {unknown[0]!r}; its parameters: {known}")
    out: dict[str, Any] = {}
    for name in sorted(spec):
        p = spec[name]
        value = given.get(name, p.default)
        out[name] = _check_one(rule, name, value, p)
    return out


def _check_one(rule: str, name: str, value: Any, p: Param) -> Any:
    def bad() -> ConfigError:
        return ConfigError(f"strategy {rule}: parameter {name} must be {p.allowed()}, got {value!r}")

    if p.check is not None:
        return p.check(name, value)
    if p.kind == "any":
        return value
    if p.kind == "str":
        if not isinstance(value, str) or (p.choices and value not in p.choices):
            raise bad()
        return value
    if p.kind == "int_or_null" and value is None:
        return None
    if p.kind in ("int", "int_or_null"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        value = int(value)
    elif p.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad()
        value = float(value)
    else:  # pragma: no cover - a programming error in a spec
        raise ValueError(f"unknown parameter kind {p.kind!r}")
    if p.lo is not None and (value < p.lo or (p.lo_open and value == p.lo)):
        raise bad()
    if p.hi is not None and (value > p.hi or (p.hi_open and value == p.hi)):
        raise bad()
    return value
