"""``fedchain verify --round N``: recompute a round from public data only and compare with the chain.

Inputs: the chain (round record, commitments from ``UpdateSubmitted`` events) and the blobs the API
serves (config, base model, updates, report, global model). Every blob's bytes are hashed here and
checked against the hash the chain committed to; the API is not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from fedchain.aggregator.compute import compute_round
from fedchain.chain.client import connect_local_or_api
from fedchain.chain.deployment import Deployment
from fedchain.chain.types import RoundStatus
from fedchain.codec import decode_json, decode_tensors
from fedchain.errors import FedchainError, InvalidBlob
from fedchain.hashing import commitment
from fedchain.settings import REPO_ROOT, Settings

MAX_JSON = 1024 * 1024


@dataclass
class VerifyResult:
    round_id: int
    ok: bool
    onchain_model_hash: str | None = None
    recomputed_model_hash: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PublicBlobs:
    """Fetches blobs from the API and hashes them locally; records what did not check out."""

    def __init__(self, api_url: str, max_bytes: int) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = httpx.Client(base_url=self.api_url, timeout=30)
        self.max_bytes = max_bytes
        self.problems: list[str] = []
        self.mismatched: set[str] = set()

    def get(self, h: str) -> bytes | None:
        try:
            r = self.http.get(f"/blobs/{h}")
        except httpx.TransportError as exc:
            raise FedchainError(f"cannot reach the API at {self.api_url} ({type(exc).__name__})",
                                hint="pass --api-url of a fedchain aggregator (FEDCHAIN_API_URL)") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            self.problems.append(f"blob {h}: the API answered HTTP {r.status_code} ({r.text[:160]})")
            return None
        if len(r.content) > self.max_bytes:
            self.problems.append(f"blob {h}: {len(r.content)} bytes, over the limit")
            return None
        actual = commitment(r.content)
        if actual != h:
            self.problems.append(f"blob {h}: the API served bytes that hash to {actual}")
            self.mismatched.add(h)
        return r.content

    def require(self, h: str, what: str) -> bytes:
        """A blob the round cannot be checked without: served, and matching its hash."""
        data = self.get(h)
        if data is None or h in self.mismatched:
            raise FedchainError(f"the API does not serve the {what} {h} intact")
        return data

    def deployment(self) -> Deployment:
        r = self.http.get("/deployment")
        if r.status_code != 200:
            raise FedchainError(f"{self.api_url}/deployment answered HTTP {r.status_code}",
                                hint="pass --deployments-dir with the deployment file")
        return Deployment.from_json(r.json())


def verify_round(
    round_id: int, *, rpc_url: str, api_url: str, deployments_dir: Path,
    log: Callable[[str], None] = print, max_bytes: int | None = None,
) -> VerifyResult:
    max_bytes = max_bytes or Settings().max_blob_bytes
    blobs = PublicBlobs(api_url, max_bytes)
    chain = connect_local_or_api(rpc_url, deployments_dir=deployments_dir, repo_root=REPO_ROOT,
                                 api_deployment=blobs.deployment)
    info = chain.get_round(round_id)
    result = VerifyResult(round_id=round_id, ok=False, onchain_model_hash=info.global_model_hash)
    if info.status == RoundStatus.OPEN:
        raise FedchainError(f"round {round_id} is still open: nothing to verify yet",
                            hint="wait until it is finalized or expired")
    if info.status == RoundStatus.EXPIRED:
        result.ok = True
        result.notes.append(f"round {round_id} expired without quorum: no model was produced")
        log(result.notes[-1])
        return result

    config = decode_json(blobs.require(info.config_hash, "round config"), max_bytes=MAX_JSON)
    base_bytes = blobs.require(info.base_model_hash, "base model")
    base = decode_tensors(base_bytes, max_bytes=max_bytes)
    commitments = chain.commitments(round_id)
    log(f"round {round_id}: {len(commitments)} commitment(s) on-chain, strategy "
        f"{(config.get('strategy') or {}).get('name', 'fedavg')}")
    comp = compute_round(config, base, commitments, blobs.get, max_bytes=max_bytes, min_updates=info.min_updates)
    result.recomputed_model_hash = comp.model_hash
    problems = result.problems
    problems.extend(blobs.problems)
    if comp.model_hash != info.global_model_hash:
        problems.append(f"global model hash differs: chain {info.global_model_hash}, recomputed {comp.model_hash}")
    if len(comp.accepted) != info.accepted_count:
        problems.append(f"accepted count differs: chain {info.accepted_count}, recomputed {len(comp.accepted)}")
    served_model = blobs.get(info.global_model_hash) if info.global_model_hash else None
    if served_model is None:
        problems.append(f"the API does not serve the global model {info.global_model_hash}")
    report_bytes = blobs.get(info.report_hash) if info.report_hash else None
    if report_bytes is None:
        problems.append(f"the API does not serve the round report {info.report_hash}")
    else:
        try:
            report = decode_json(report_bytes, max_bytes=MAX_JSON)
            claimed = sorted(u["node"].lower() for u in report.get("updates", []) if u.get("accepted"))
            recomputed = sorted(d.node.lower() for d in comp.accepted)
            if claimed != recomputed:
                problems.append(f"report's accepted nodes {claimed} differ from recomputed {recomputed}")
            if report.get("global_model_hash") != info.global_model_hash:
                problems.append(f"report hash field global_model_hash {report.get('global_model_hash')} "
                                f"differs from the chain's {info.global_model_hash}")
        except (InvalidBlob, AttributeError, TypeError, KeyError) as exc:
            problems.append(f"round report {info.report_hash} is not a valid report: {exc}")
    for d in comp.rejected:
        log(f"  rejected {d.node}: {d.reason}")
    result.ok = not problems
    return result
