"""Install the npm-backed solc wrapper where brownie and py-solc-x look for compilers.

py-solc-x finds compilers only as ``solc-v<version>`` in its install folder (``~/.solcx`` unless
``SOLCX_BINARY_PATH`` says otherwise). Nothing can be downloaded here, so we put a small launcher
there that runs ``tools/solc-wrapper.js`` with the pinned npm ``solc`` module. Idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    import solcx

    version = json.loads((REPO / "node_modules" / "solc" / "package.json").read_text())["version"]
    node = shutil.which("node")
    if node is None:
        print("error: `node` is not on PATH; install Node.js 20+ and run `make install` again", file=sys.stderr)
        return 1
    folder = solcx.get_solcx_install_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{version}"
    launcher = f'#!/bin/sh\nexec "{node}" "{REPO / "tools" / "solc-wrapper.js"}" "$@"\n'
    if not target.exists() or target.read_text() != launcher:
        target.write_text(launcher)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    out = subprocess.run([str(target), "--version"], capture_output=True, text=True, check=True).stdout
    if version not in out:
        print(f"error: {target} answered {out!r}, expected version {version}", file=sys.stderr)
        return 1
    # A stable path for slither and scripts: .venv/bin/solc
    venv_solc = Path(sys.prefix) / "bin" / "solc"
    if venv_solc.is_symlink() or venv_solc.exists():
        venv_solc.unlink()
    venv_solc.symlink_to(target)
    print(f"solc {version} (npm solc-js) -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
