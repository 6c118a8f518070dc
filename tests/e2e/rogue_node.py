"""A misbehaving participant for the end-to-end tests: it commits a hash on-chain each round but
never uploads anything. Runs as its own process, like a real node."""

from __future__ import annotations

import argparse
import os
import sys
import time

from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundStatus
from fedchain.settings import REPO_ROOT


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--deployments-dir", required=True)
    p.add_argument("--dev-account", type=int, required=True)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    chain = ChainClient.connect(args.rpc_url, deployments_dir=__import__("pathlib").Path(args.deployments_dir),
                                repo_root=REPO_ROOT, account=dev_account(args.dev_account))
    done: set[int] = set()
    while len(done) < args.rounds:
        rid = chain.current_round_id()
        if rid and rid not in done and chain.get_round(rid).status == RoundStatus.OPEN:
            fake = "0x" + os.urandom(32).hex()
            tx = chain.submit_update(rid, fake, 1000)
            print(f"round {rid}: committed {fake} without uploading (gas {tx.gas_used})", flush=True)
            done.add(rid)
        time.sleep(0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
