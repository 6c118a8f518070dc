#!/usr/bin/env python
"""Round latency on real processes: the time a round spends on anything but training, and the time
from launching a federation to its first training step.

Every case is one ``fedchain demo --no-compare --json`` (its own anvil with 1-second blocks, the
aggregator's uvicorn and N node processes on this machine, options-iv), with a quorum of all N so
that each round closes as soon as the last node commits. From its output:

- **round period** of round r: the round loop's start of round r+1 minus its start of round r
  (``RoundSummary.started_at``): opening, training, uploads, commits, the merge, finalizing, and
  the loop's turn to the next round;
- **training** of round r: the slowest node's training time in that round (each node logs
  ``round r: trained on K samples in X s``);
- **non-training time** of round r: the period minus the training; the figure is the median over
  rounds 2..R-1 (round 1 is the first contact; the last has no next round to end its period);
- **launch to first training**: from starting ``fedchain demo`` to the first node's round-1
  training start (seen in the node logs, read every 50 ms, less the training time the line reports).

Writes docs/benchmarks-latency.md and docs/data/bench-latency.json.

    python scripts/bench_latency.py                  # 3, 10 and 20 nodes, 6 rounds, 3 runs each (~10 min)
    python scripts/bench_latency.py --nodes 10 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks-latency.md"
DATA = REPO / "docs" / "data" / "bench-latency.json"
TRAINED = re.compile(r"round (\d+): trained on \d+ samples in ([0-9.]+) s")


def training_times(logs: Path) -> dict[int, list[float]]:
    """Per round, every node's logged training time."""
    out: dict[int, list[float]] = {}
    for log in sorted(logs.glob("node-*.log")):
        for m in TRAINED.finditer(log.read_text(errors="replace")):
            out.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    return out


def run_case(nodes: int, rounds: int, round_seconds: int, console: Console) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        out, workdir = Path(tmp) / "summary.json", Path(tmp) / "demo"
        cmd = [sys.executable, "-m", "fedchain.cli", "demo", "--nodes", str(nodes), "--rounds", str(rounds),
               "--no-compare", "--json", str(out), "--workdir", str(workdir), "--min-updates", str(nodes),
               "--round-seconds", str(round_seconds)]
        launched = time.monotonic()
        with open(Path(tmp) / "demo.out", "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
            first_training = None
            while proc.poll() is None:
                if first_training is None and (workdir / "logs").is_dir():
                    seen = time.monotonic()
                    times = training_times(workdir / "logs").get(1)
                    if times:  # the first line: when it was written, less the training it reports
                        first_training = seen - launched - max(times)
                time.sleep(0.05)
        if proc.returncode != 0:
            console.print((Path(tmp) / "demo.out").read_text(errors="replace")[-3000:])
            raise SystemExit(f"the demo failed: {' '.join(cmd)}")
        summary = json.loads(out.read_text())
        trained = training_times(workdir / "logs")
    rows = summary["rounds"]
    expired = [r["round"] for r in rows if r["status"] != "finalized"]
    per_round = []
    for this, nxt in zip(rows, rows[1:]):
        r = this["round"]
        if r < 2 or not trained.get(r):
            continue
        period = nxt["started_at"] - this["started_at"]
        train = max(trained[r])
        per_round.append({"round": r, "period": round(period, 3), "training": round(train, 3),
                          "non_training": round(period - train, 3)})
    return {
        "nodes": nodes, "rounds": rounds, "expired_rounds": expired,
        "launch_to_first_training": round(first_training, 2) if first_training is not None else None,
        "per_round": per_round,
        "median_period": round(statistics.median(p["period"] for p in per_round), 3),
        "median_training": round(statistics.median(p["training"] for p in per_round), 3),
        "median_non_training": round(statistics.median(p["non_training"] for p in per_round), 3),
    }


def _range(pair: list[float] | None) -> str:
    return f"{pair[0]:.2f}-{pair[1]:.2f}" if pair else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--nodes", type=int, nargs="+", default=[3, 10, 20], help="federation sizes to run")
    p.add_argument("--rounds", type=int, default=6, help="rounds per run (at least 4: rounds 2..R-1 are measured)")
    p.add_argument("--round-seconds", type=int, default=120, help="each round's deadline (rounds close early)")
    p.add_argument("--repeat", type=int, default=3, help="runs per federation size; the table shows the median "
                                                          "run and the range over the runs")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/ as it is")
    args = p.parse_args(argv)
    if args.rounds < 4:
        p.error("--rounds must be at least 4")
    console = Console()
    cases = []
    for n in args.nodes:
        runs = []
        for k in range(args.repeat):
            with console.status(f"{n} nodes, {args.rounds} rounds, run {k + 1}/{args.repeat}…"):
                runs.append(run_case(n, args.rounds, args.round_seconds, console))
            c = runs[-1]
            console.print(f"{n} nodes, run {k + 1}: non-training {c['median_non_training']:.2f} s per round (period "
                          f"{c['median_period']:.2f} s, training {c['median_training']:.2f} s), launch to first "
                          f"training {c['launch_to_first_training']} s, expired rounds {c['expired_rounds'] or 'none'}")
        runs.sort(key=lambda r: r["median_non_training"])
        median = dict(runs[len(runs) // 2])
        median["runs"] = runs
        median["non_training_range"] = [runs[0]["median_non_training"], runs[-1]["median_non_training"]]
        firsts = sorted(r["launch_to_first_training"] for r in runs if r["launch_to_first_training"] is not None)
        median["launch_to_first_training"] = firsts[len(firsts) // 2] if firsts else None
        median["launch_range"] = [firsts[0], firsts[-1]] if firsts else None
        median["expired_rounds"] = sorted({x for r in runs for x in r["expired_rounds"]})
        cases.append(median)
    t = Table(title="round latency")
    for col in ("nodes", "round period (s)", "training (s)", "non-training (s)", "range", "launch → first (s)",
                "range", "expired"):
        t.add_column(col, justify="right")
    for c in cases:
        t.add_row(str(c["nodes"]), f"{c['median_period']:.2f}", f"{c['median_training']:.2f}",
                  f"{c['median_non_training']:.2f}", _range(c["non_training_range"]),
                  f"{c['launch_to_first_training']}", _range(c["launch_range"]),
                  ", ".join(map(str, c["expired_rounds"])) or "none")
    console.print(t)
    if args.no_write:
        return 0
    import os

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps({"machine": machine, "cases": cases}, indent=2) + "\n")
    lines = [
        "# Round latency: non-training time per round, launch to first training",
        "",
        f"Measured with `python scripts/bench_latency.py --nodes {' '.join(map(str, args.nodes))} --rounds "
        f"{args.rounds} --repeat {args.repeat}` (`make bench-latency`) on {machine}. Each case is one `fedchain demo --no-compare "
        f"--min-updates N` (anvil with a block a second, the aggregator's uvicorn and N node processes, all on "
        "this machine; options-iv). The round period is from the round loop's start of a round to its start "
        "of the next; training is the slowest node's logged training time in that round; non-training is "
        "the period less the training; medians over rounds 2..R-1. Launch to first training: from starting "
        "the demo to the first node starting round 1's training (the nodes' start-up, anvil, the deployment "
        "and the API included). Each size is run several times (the machine is shared, and runs of one "
        "build differ): the row is the run with the median non-training time, with the range over the "
        "runs beside it; launch to first training is the median of the runs. The script's docstring has "
        "the definitions.",
        "",
        "| nodes | round period (s) | training (s) | non-training (s) | range over runs | launch → first training (s) "
        "| range over runs | rounds expired (any run) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        lines.append(f"| {c['nodes']} | {c['median_period']:.2f} | {c['median_training']:.2f} | "
                     f"{c['median_non_training']:.2f} | {_range(c['non_training_range'])} | "
                     f"{c['launch_to_first_training']} | {_range(c['launch_range'])} | "
                     f"{', '.join(map(str, c['expired_rounds'])) or 'none'} |")
    lines += ["", "Per-round figures: docs/data/bench-latency.json.", ""]
    keep = DOC.read_text().split("<!-- reading -->", 1)[1] if DOC.exists() and "<!-- reading -->" in DOC.read_text() else ""
    DOC.write_text("\n".join(lines) + "<!-- reading -->" + keep)
    console.print(f"wrote {DOC.relative_to(REPO)} and {DATA.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
