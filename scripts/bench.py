#!/usr/bin/env python
"""Benchmarks of the verification-critical code: hashing, codec, aggregation.

Measures on this machine and overwrites docs/benchmarks.md with the figures. Run with
``make bench`` or ``python scripts/bench.py`` (about 30 s). Each figure is the median of several
timed runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedchain.codec import decode_tensors, encode_tensors, tensor_spec  # noqa: E402
from fedchain.hashing import commitment  # noqa: E402
from fedchain.strategy import ClientUpdate, FedAvg  # noqa: E402

MiB = 1 << 20
MB = 1_000_000


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def keccak_fn() -> tuple[str, Callable[[bytes], bytes]] | None:
    try:
        from Crypto.Hash import keccak  # pycryptodome

        return "keccak-256, pycryptodome", lambda d: keccak.new(digest_bits=256, data=d).digest()
    except ImportError:
        pass
    try:
        import sha3  # type: ignore[import-not-found]  # pysha3 / safe-pysha3

        return "keccak-256, pysha3", lambda d: sha3.keccak_256(d).digest()
    except ImportError:
        return None


def model_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}


#: ~16M parameters (16,785,410): an embedding, two square layers, biases.
MODEL_16M = {
    "embed.weight": (4096, 2048),
    "layers.0.weight": (2048, 2048),
    "layers.0.bias": (2048,),
    "layers.1.weight": (2048, 2048),
    "layers.1.bias": (2048,),
    "head.weight": (2, 2048),
    "head.bias": (2,),
}
#: ~1M parameters (1,059,850).
MODEL_1M = {
    "fc1.weight": (1024, 1024),
    "fc1.bias": (1024,),
    "fc2.weight": (10, 1024),
    "fc2.bias": (10,),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    console = Console()
    r = args.repeat

    rows: list[tuple[str, str, str, str]] = []  # (what, input, time, throughput)
    blob = np.random.default_rng(0).bytes(64 * MiB)
    keccak = keccak_fn()
    m16 = model_dict(MODEL_16M, 1)
    n16 = sum(int(np.prod(s)) for s in MODEL_16M.values())
    n1 = sum(int(np.prod(s)) for s in MODEL_1M.values())

    jobs: list[tuple[str, Callable[[], None]]] = []

    def hash_job(label: str, fn: Callable[[bytes], object]) -> Callable[[], None]:
        def run() -> None:
            t = timed(lambda: fn(blob), r)
            rows.append((label, "64 MiB random blob", f"{t * 1e3:.1f} ms", f"{len(blob) / t / MB:,.0f} MB/s"))

        return run

    jobs.append(("commitment()", hash_job("commitment() (auto threads)", commitment)))
    jobs.append(("commitment(workers=1)", hash_job("commitment(workers=1)", lambda d: commitment(d, workers=1))))
    jobs.append(("hashlib.sha256", hash_job("hashlib.sha256 (plain)", lambda d: hashlib.sha256(d).digest())))
    jobs.append(("hashlib.sha3_256", hash_job("hashlib.sha3_256 (plain)", lambda d: hashlib.sha3_256(d).digest())))
    if keccak is not None:
        jobs.append((keccak[0], hash_job(keccak[0] + " (plain)", keccak[1])))

    encoded: dict[str, bytes] = {}

    def enc() -> None:
        encoded["m"] = encode_tensors(m16)
        t = timed(lambda: encode_tensors(m16), r)
        size = len(encoded["m"])
        rows.append(("encode_tensors", f"{n16:,} params, {size / MiB:.1f} MiB", f"{t * 1e3:.1f} ms", f"{size / t / MB:,.0f} MB/s"))

    def dec() -> None:
        data, spec = encoded["m"], tensor_spec(m16)
        t = timed(lambda: decode_tensors(data, expected=spec, max_bytes=len(data)), r)
        size = len(data)
        rows.append(("decode_tensors (validating)", f"{n16:,} params, {size / MiB:.1f} MiB", f"{t * 1e3:.1f} ms", f"{size / t / MB:,.0f} MB/s"))

    jobs.append(("encode_tensors 16M", enc))
    jobs.append(("decode_tensors 16M", dec))

    def agg(k: int) -> Callable[[], None]:
        def run() -> None:
            base = {n: np.zeros(s, np.float32) for n, s in MODEL_1M.items()}
            updates = [
                ClientUpdate(node=f"0x{i:040x}", weights=model_dict(MODEL_1M, 100 + i), num_samples=100 + i) for i in range(k)
            ]
            strategy = FedAvg()
            t = timed(lambda: strategy.aggregate(base, updates), r)
            rows.append((f"FedAvg.aggregate, {k} updates", f"{n1:,} params each", f"{t * 1e3:.1f} ms", f"{k * n1 / t / 1e6:,.0f} M params/s"))

        return run

    jobs.append(("FedAvg 5 updates", agg(5)))
    jobs.append(("FedAvg 20 updates", agg(20)))

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("benchmarks", total=len(jobs))
        for label, job in jobs:
            progress.update(task, description=label)
            job()
            progress.advance(task)
    elapsed = time.perf_counter() - started

    table = Table(title="fedchain benchmarks (median of %d runs)" % r)
    for col in ("what", "input", "time", "throughput"):
        table.add_column(col, justify="right" if col in ("time", "throughput") else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 1
    import torch  # noqa: F401  (only for its version in the report)

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.py` (run `make bench`, or `python scripts/bench.py`); do not edit by hand.",
        "Figures are wall-clock medians of %d runs after one warm-up run, on the machine below." % r,
        "MB/s is 10^6 bytes per second; MiB is 2^20 bytes.",
        "",
        f"- date: {now}",
        f"- command: `python scripts/bench.py --repeat {r}` (total {elapsed:.0f} s)",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({usable} usable by this process); "
        f"1-minute load average {load_before:.2f} when the run started (other work on the machine "
        "skews the figures, the threaded commitment() most)",
        f"- Python {platform.python_version()}, numpy {np.__version__}, torch {sys.modules['torch'].__version__}, "
        f"OpenSSL {__import__('ssl').OPENSSL_VERSION.split()[1]}, {platform.system()} {platform.machine()}",
        "",
        "| what | input | time | throughput |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += [
        "",
        "Notes:",
        "- `commitment()` hashes the 1 MiB leaves on up to min(8, usable cores) threads for blobs of",
        "  16 MiB or more (hashlib releases the GIL); `workers=1` is the single-thread figure. The",
        "  plain hashes are one `hashlib`/keccak call over the whole blob, for comparison.",
        "- `encode_tensors` includes the float32 cast and the NaN/inf check; `decode_tensors` includes",
        "  header parsing, offset and canonical-form checks, the copy and the NaN/inf check.",
        "- FedAvg accumulates in float64, elementwise, one update at a time (docs/protocol.md).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    console.print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
