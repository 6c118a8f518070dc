"""Hostile participants for the end-to-end tests, each a process of its own, like a real node.

Behaviours (``--behaviour``):

- ``no-upload``: makes a real update each round, commits its hash, never uploads it, and keeps the
  blob in ``--out-dir`` (rejected ``missing_upload``; a test later tries to upload it to another
  round, which must neither be accepted nor change ``verify``'s verdict on this one).
- ``copy``: waits for ``--victim`` to commit, then commits the victim's hash as its own, after
  downloading nothing (rejected ``not_own_update``: the blob names the victim).
- ``inflate``: uploads a well-formed update of its own, then commits it claiming 2^64 - 1 samples
  (the contract answers ``TooManySamples``) and then the round's cap, which is accepted with a
  weight bounded by the cap.

Every outcome is printed as one ``round N: ...`` line, which the tests read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fedchain.apiclient import ApiClient, error_detail
from fedchain.auth import sign_upload
from fedchain.chain.accounts import dev_account
from fedchain.chain.client import ChainClient
from fedchain.chain.types import RoundStatus
from fedchain.codec import UpdateIdentity, decode_tensors, encode_update
from fedchain.errors import ContractRevert
from fedchain.hashing import commitment
from fedchain.settings import REPO_ROOT


def _own_update(api: ApiClient, chain: ChainClient, info, rid: int, me: str, scale: float) -> bytes:
    """A well-formed update naming this node: the base model, scaled."""
    base = decode_tensors(api.blob(info.base_model_hash, max_bytes=64 << 20))
    return encode_update({k: v * scale for k, v in base.items()},
                         UpdateIdentity(chain.chain_id, chain.rounds_address, rid, me))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--api-url", required=True)
    p.add_argument("--deployments-dir", required=True, type=Path)
    p.add_argument("--dev-account", type=int, required=True)
    p.add_argument("--behaviour", choices=("no-upload", "copy", "inflate"), required=True)
    p.add_argument("--victim", default=None, help="address whose commitment `copy` copies")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=None, help="where `no-upload` keeps the blobs it withheld")
    args = p.parse_args()
    me = dev_account(args.dev_account)
    chain = ChainClient.connect(args.rpc_url, deployments_dir=args.deployments_dir, repo_root=REPO_ROOT, account=me)
    api = ApiClient(args.api_url, retry_seconds=30, log=lambda m: print(m, flush=True))
    done: set[int] = set()
    while len(done) < args.rounds:
        rid = chain.current_round_id()
        if not rid or rid in done:
            time.sleep(0.3)
            continue
        info = chain.get_round(rid)
        if info.status != RoundStatus.OPEN:
            done.add(rid)
            continue
        if args.behaviour == "no-upload":
            blob = _own_update(api, chain, info, rid, me.address, 0.99)
            h = commitment(blob)
            if args.out_dir is not None:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                (args.out_dir / f"round-{rid}.safetensors").write_bytes(blob)
            tx = chain.submit_update(rid, h, 1000)
            print(f"round {rid}: committed {h} without uploading (gas {tx.gas_used})", flush=True)
        elif args.behaviour == "copy":
            victim = chain.get_commitment(rid, args.victim)
            if victim is None:
                time.sleep(0.3)
                continue
            tx = chain.submit_update(rid, victim.update_hash, victim.num_samples)
            print(f"round {rid}: copied {args.victim}'s commitment {victim.update_hash} (gas {tx.gas_used})", flush=True)
        else:
            blob = _own_update(api, chain, info, rid, me.address, 1.01)
            h = commitment(blob)
            r = api.upload(rid, h, blob, sign_upload(me, chain.chain_id, chain.rounds_address, rid, h))
            print(f"round {rid}: upload HTTP {r.status_code} {error_detail(r) if r.status_code >= 300 else ''}",
                  flush=True)
            try:
                chain.submit_update(rid, h, 2**64 - 1)
                print(f"round {rid}: inflated commitment ACCEPTED (bug)", flush=True)
            except ContractRevert as exc:
                print(f"round {rid}: inflated commitment refused: {exc.name}", flush=True)
            tx = chain.submit_update(rid, h, info.max_samples)
            print(f"round {rid}: committed at the cap {info.max_samples} (gas {tx.gas_used})", flush=True)
        done.add(rid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
