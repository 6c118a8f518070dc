"""Console output for log files: one event per line, tables at a fixed width."""

from __future__ import annotations

import io

from fedchain.console import make_console, report_error
from fedchain.errors import RpcUnavailable


def test_long_log_line_to_a_file_stays_on_one_line():
    con = make_console()
    buf = io.StringIO()
    con.file = buf
    line = "aggregator cannot run a round: " + str(RpcUnavailable("http://127.0.0.1:55627", "ChunkedEncodingError")) \
        + "; retrying in 0.5 s"
    assert len(line) > con.width  # would wrap on a wrapping console
    con.print(line, highlight=False)
    assert buf.getvalue() == line + "\n"


def test_error_and_hint_are_one_line_each_whatever_their_length():
    con = make_console(stderr=True)
    buf = io.StringIO()
    con.file = buf
    exc = RpcUnavailable("http://" + "h" * 200 + ":8545", "ConnectionError")
    assert report_error(exc, con) == exc.exit_code
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: cannot reach the chain") and lines[1].startswith("hint: ")
