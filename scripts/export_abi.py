#!/usr/bin/env python
"""Copy the ABI of the deployed contract from brownie's artifact into the package.

``build/contracts/TrainingRounds.json`` (written by ``brownie compile``) holds the ABI together with
bytecode, AST and source maps; the wheel a node host installs carries only the ABI, as
``fedchain/chain/abi/TrainingRounds.json``::

    {"contractName": "TrainingRounds", "abi": [...],
     "sources": {"contracts/TrainingRounds.sol": "<sha1 of the file>", ...}}

``sources`` are the sha1 of the repository's own contract sources the artifact was compiled from
(not node_modules), so tests/unit/test_packaged_abi.py can tell a stale packaged ABI even on a
clone that has not compiled yet. Run by ``make compile`` and ``make dist``; the output is committed.

``--check`` writes nothing and exits 1 if the packaged file differs from what would be written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = ("TrainingRounds",)
OUT_DIR = REPO / "fedchain" / "chain" / "abi"


def compiled_sha1s(build_dir: Path) -> dict[str, str]:
    """Source path -> the sha1 of the source brownie compiled it from (each artifact records its own)."""
    out = {}
    for f in sorted(build_dir.glob("*.json")):
        art = json.loads(f.read_text())
        if isinstance(art, dict) and art.get("sourcePath") and art.get("sha1"):
            out[art["sourcePath"]] = art["sha1"]
    return out


def packaged(artifact: dict, build_dir: Path, repo: Path = REPO) -> dict:
    """The packaged form of one brownie artifact."""
    compiled = compiled_sha1s(build_dir)
    sources = {}
    for rel in sorted(set(artifact.get("allSourcePaths", {}).values())):
        if rel.startswith("node_modules/"):
            continue
        sources[rel] = compiled.get(rel) or hashlib.sha1((repo / rel).read_bytes()).hexdigest()
    return {"contractName": artifact["contractName"], "abi": artifact["abi"], "sources": sources}


def render(obj: dict) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "contracts")
    parser.add_argument("--check", action="store_true", help="exit 1 if the packaged ABI is stale; write nothing")
    args = parser.parse_args()
    stale = []
    for name in CONTRACTS:
        src = args.build_dir / f"{name}.json"
        if not src.is_file():
            print(f"error: {src} not found; run `make compile` (brownie compile) first", file=sys.stderr)
            return 2
        text = render(packaged(json.loads(src.read_text()), args.build_dir))
        out = OUT_DIR / f"{name}.json"
        if out.is_file() and out.read_text() == text:
            continue
        if args.check:
            stale.append(str(out.relative_to(REPO)))
            continue
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out.relative_to(REPO)}")
    if stale:
        print(f"error: stale packaged ABI: {', '.join(stale)}; run scripts/export_abi.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
