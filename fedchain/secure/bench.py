"""Cost of secure aggregation's pure steps: ``python -m fedchain.secure.bench [params] [nodes...]``.

Times, on one core, the node step (:func:`.pipeline.node_masked_update`: clip, quantise, mask,
share bundle, encode) and the unmask (:func:`.pipeline.unmask_round`) with 30% of the nodes dropped
before committing. Prints one line per cohort size. Not a test."""

from __future__ import annotations

import sys
import time

import numpy as np

from fedchain.codec import FixedPointConfig
from fedchain.secure.keys import RoundContext, order_addresses, private_key_from_seed, public_key
from fedchain.secure.pipeline import SecureConfig, node_masked_update, node_unmask_blob, unmask_round


def run(params: int, n: int) -> dict[str, float]:
    ctx = RoundContext(31337, "0x" + "ab" * 20, 1)
    addrs = order_addresses(["0x%040x" % (i + 1) for i in range(n)])
    sks = {a: private_key_from_seed(i.to_bytes(32, "big")) for i, a in enumerate(addrs)}
    pks = {a: public_key(s) for a, s in sks.items()}
    t = n // 2 + 1
    cfg = SecureConfig(FixedPointConfig(clip=1.0, scale_bits=16), threshold=t)
    spec = {"w": (params,)}
    delta = {"w": np.random.default_rng(0).normal(size=params) * 1e-3}
    start = time.perf_counter()
    blob0 = node_masked_update(delta, secure=cfg, ctx=ctx, me=addrs[0], private_key=sks[addrs[0]], selected=addrs, public_keys=pks, secret=b"s" * 32)
    node_s = time.perf_counter() - start
    blobs = {addrs[0]: blob0}
    for i, a in enumerate(addrs[1:], 1):
        blobs[a] = node_masked_update(delta, secure=cfg, ctx=ctx, me=a, private_key=sks[a], selected=addrs, public_keys=pks, secret=bytes([i % 256]) * 32)
    dropped = max(0, min(n - t, int(0.3 * n)))
    committed = addrs[dropped:]
    start = time.perf_counter()
    unmask = {a: node_unmask_blob(me=a, private_key=sks[a], ctx=ctx, selected=addrs, committed=committed, public_keys=pks) for a in committed}
    unmask_blob_s = (time.perf_counter() - start) / len(committed)
    start = time.perf_counter()
    result = unmask_round({a: blobs[a] for a in committed}, unmask, secure=cfg, ctx=ctx, selected=addrs, committed=committed, expected=spec)
    unmask_s = time.perf_counter() - start
    assert result.range.ok
    return {
        "nodes": n,
        "params": params,
        "node_s": node_s,
        "blob_bytes": len(blob0),
        "share_bytes": n * n * 82,
        "unmask_blob_s": unmask_blob_s,
        "unmask_s": unmask_s,
        "dropped": dropped,
    }


if __name__ == "__main__":
    params = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for n in [int(x) for x in sys.argv[2:]] or [10, 50]:
        r = run(params, n)
        print(
            f"n={r['nodes']} params={r['params']}: node step {r['node_s']:.3f} s, blob {r['blob_bytes']} B "
            f"(shares {r['share_bytes']} B), unmasking blob {r['unmask_blob_s'] * 1000:.1f} ms/node, "
            f"unmask with {r['dropped']} dropped {r['unmask_s']:.3f} s"
        )
