#!/usr/bin/env python
"""Round wall time on real processes: transparent against secure mode, with and without dropouts.

Every case is one ``fedchain demo`` (its own anvil with 1-second blocks, the aggregator's uvicorn
and N node processes, all on this machine) with ``--json``; a round's time is the aggregator's,
from opening it to its ``finalizeRound`` transaction (``RoundSummary.seconds``), and the figure is
the median over the rounds after the first (the first also waits for the node processes to start).
Writes docs/benchmarks-rounds.md and docs/data/bench-rounds.json.

    python scripts/bench_rounds.py                       # 10 nodes: the four cases (~10 min)
    python scripts/bench_rounds.py --nodes 10 50         # and 50 nodes (needs ~20 GB of RAM)

Cases per node count N, each a run of ``--rounds`` rounds: ``transparent`` and ``secure`` (no DP
noise: the cost of the masking alone; the noise adds well under a millisecond per node), median of
the rounds from ``--from-round`` on (the first ones also wait for the node processes to start);
``secure, 3 drop after committing`` and ``secure, 3 drop before committing``: the last three
nodes crash in round ``--crash-round``, and the figure is that round against the round before it
in the same run. A node that dies after committing costs nothing extra: its self mask is rebuilt
from any t posts. A node that dies before committing holds the commit phase open until the
deadline (the contract cannot know it will not commit), so that case is run with a short
``--dropout-deadline``: its cost is the deadline the operator sets, not the protocol.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks-rounds.md"
DATA = REPO / "docs" / "data" / "bench-rounds.json"


#: --cases: (mode, crash stage) of each.
CASES = {"transparent": ("transparent", None), "secure": ("secure", None),
         "after-commit": ("secure", "after-commit"), "after-upload": ("secure", "after-upload")}


def run_case(nodes: int, rounds: int, mode: str, crash: str | None, round_seconds: int, unmask_window: int,
             console: Console, from_round: int = 3, crash_round: int = 5, close_window: int = 0,
             relay_cutoff: int = 5) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        out = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "fedchain.cli", "demo", "--nodes", str(nodes), "--rounds", str(rounds),
               "--no-compare", "--json", str(out), "--workdir", str(Path(tmp) / "demo"), "--mode", mode,
               "--round-seconds", str(round_seconds), "--min-updates", str(nodes // 2 + 1),
               "--close-window", str(close_window), "--relay-cutoff", str(relay_cutoff)]
        if mode == "secure":
            cmd += ["--noise-multiplier", "0", "--unmask-window", str(unmask_window)]
        if crash:
            for i in range(nodes - 2, nodes + 1):  # the last three nodes
                cmd += ["--crash-at", f"{i}={crash}@{crash_round}"]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            console.print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"the demo failed: {' '.join(cmd)}")
        summary = json.loads(out.read_text())
    seconds = [r["seconds"] for r in summary["rounds"]]
    statuses = [r["status"] for r in summary["rounds"]]
    if crash is None:
        figure, before = statistics.median(seconds[from_round - 1:]), None
    else:
        figure, before = seconds[crash_round - 1], seconds[crash_round - 2]
    return {"nodes": nodes, "mode": mode, "dropout": crash, "round_seconds": seconds, "statuses": statuses,
            "median_seconds": figure, "round_before": before, "deadline": round_seconds,
            "close_window": close_window,
            "total_seconds": round(time.monotonic() - started, 1), "accepted": [r["accepted"] for r in summary["rounds"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--nodes", type=int, nargs="+", default=[10], help="node counts to run")
    p.add_argument("--rounds", type=int, default=6, help="rounds per case")
    p.add_argument("--from-round", type=int, default=3, help="first round counted (the first wait for node start-up)")
    p.add_argument("--crash-round", type=int, default=5, help="the round in which the dropout cases' nodes crash")
    p.add_argument("--round-seconds", type=int, default=90, help="each round's deadline (rounds close early when "
                                                                  "every node has committed)")
    p.add_argument("--dropout-deadline", type=int, default=10,
                   help="the deadline of the drop-before-committing case (the time such a round waits)")
    p.add_argument("--unmask-window", type=int, default=10, help="secure rounds' unmask window")
    p.add_argument("--no-dropouts", action="store_true", help="skip the two dropout cases")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="the cases to run")
    p.add_argument("--close-window", type=int, default=0,
                   help="the demo's --close-window: with it, the drop-before-committing case keeps the normal "
                        "deadline and the quorum's commitment brings it forward (0: that case runs with "
                        "--dropout-deadline instead)")
    p.add_argument("--relay-cutoff", type=int, default=5, help="the demo's --relay-cutoff (below --close-window)")
    p.add_argument("--out", type=Path, default=DATA, help="where the per-round figures go (JSON)")
    p.add_argument("--no-doc", action="store_true", help=f"do not rewrite {DOC.relative_to(REPO)}")
    args = p.parse_args(argv)
    console = Console()
    results = []
    for n in args.nodes:
        cases = [CASES[c] for c in args.cases if not (args.no_dropouts and CASES[c][1])]
        for mode, crash in cases:
            console.print(f"[bold]{n} nodes, {mode}" + (f", 3 crash {crash} in round 2" if crash else "") + "[/]")
            short = crash == "after-upload" and not args.close_window
            deadline = args.dropout_deadline if short else args.round_seconds
            r = run_case(n, args.rounds, mode, crash, deadline, args.unmask_window, console,
                         from_round=args.from_round, crash_round=args.crash_round, close_window=args.close_window,
                         relay_cutoff=args.relay_cutoff)
            console.print(f"  rounds {r['round_seconds']} s ({r['statuses']}), median {r['median_seconds']:.2f} s")
            results.append(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/bench_rounds.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.write_text(json.dumps({"command": command.strip(), "round_seconds": args.round_seconds,
                                    "unmask_window": args.unmask_window, "close_window": args.close_window,
                                    "results": results}, indent=2))
    if not args.no_doc:
        write_doc(results, args, command.strip())
    t = Table(title="round wall time")
    for col in ("nodes", "case", "round (s)", "vs transparent", "vs the round before"):
        t.add_column(col)
    for row in table_rows(results):
        t.add_row(*row)
    console.print(t)
    return 0


def table_rows(results: list[dict]) -> list[tuple[str, ...]]:
    base = {r["nodes"]: r["median_seconds"] for r in results if r["mode"] == "transparent"}
    rows = []
    for r in results:
        window = f", close window {r['close_window']} s" if r.get("close_window") else ""
        case = r["mode"] + (f", 3 of {r['nodes']} crash {r['dropout']} (deadline {r['deadline']} s{window})"
                            if r["dropout"] else "")
        ratio = r["median_seconds"] / base[r["nodes"]] if base.get(r["nodes"]) else float("nan")
        vs_before = f"{r['median_seconds'] / r['round_before']:.2f}x" if r.get("round_before") else "-"
        rows.append((str(r["nodes"]), case, f"{r['median_seconds']:.2f}", f"{ratio:.2f}x", vs_before))
    return rows


def write_doc(results: list[dict], args: argparse.Namespace, command: str) -> None:
    import platform

    lines = ["# Round wall time: transparent and secure mode", "",
             f"Measured with `{command}` on {platform.machine()} ({platform.processor() or 'cpu'}), "
             f"{__import__('os').cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Every case is one `fedchain "
             "demo` (anvil mining each transaction at once and a block every second, the aggregator's uvicorn and the node processes on this one machine), "
             "options-iv; a round's time is the aggregator's, from opening it to its finalize transaction; the "
             f"figure is the median of rounds {args.from_round}..{args.rounds} (the first rounds also wait for the "
             f"node processes to start), or for a dropout case round {args.crash_round}, where the last 3 nodes "
             f"crash, against round {args.crash_round - 1} of the same run. Deadline {args.round_seconds} s "
             f"({args.dropout_deadline} s in the drop-before-committing case), unmask window {args.unmask_window} s; "
             "secure rounds without DP noise; threshold and quorum n // 2 + 1.", "",
             "| nodes | case | round (s) | vs transparent | vs the round before |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in table_rows(results)]
    lines += ["", "Per-round figures: docs/data/bench-rounds.json.", ""]
    DOC.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
