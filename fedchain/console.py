"""Console helpers shared by the commands (the CLI, the demo, the node). Nothing imports ``cli``."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from fedchain.errors import FedchainError

def make_console(*, stderr: bool = False) -> Console:
    """A console for a terminal (its own width, wrapped) or for a log file or pipe: 120 columns
    for tables, and a log line is never wrapped, so one event stays on one line (``grep``-able)."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, width=None if tty else 120, soft_wrap=not tty)


console = make_console()


def report_error(exc: FedchainError, con: Console | None = None) -> int:
    """Print ``error: ...`` (and ``hint: ...``) as one line each; return the exit code."""
    con = con or make_console(stderr=True)
    con.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    if exc.hint:
        con.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    return exc.exit_code


def gas(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def round_table(summaries: list[Any], metric: str) -> Table:
    """The per-round table of the aggregator and the demo."""
    t = Table(title="fedchain rounds")
    # Secure rounds with DP noise: the accountant's total ε after each round (None: not accounted).
    show_eps = any(getattr(s, "epsilon", None) is not None for s in summaries)
    cols = [("round", "right"), ("status", "left"), ("accepted", "right"), ("rejected", "right"),
            ("global model hash", "left"), ("gas open", "right"), ("gas close", "right")]
    if show_eps:
        cols.append(("ε total", "right"))
    for col, justify in cols + [(f"val {metric}", "right")]:
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        m = s.metrics.get(metric)
        h = s.global_model_hash
        row = [str(s.round), s.status, str(s.accepted), str(s.rejected), f"{h[:18]}…{h[-4:]}" if h else "-",
               gas(s.gas.get("open")), gas(s.gas.get("finalize", s.gas.get("expire")))]
        if show_eps:
            eps = getattr(s, "epsilon", None)
            row.append(f"{eps:.4g}" if eps is not None else "-")
        t.add_row(*row, f"{m:.4f}" if m is not None else "-")
    return t
