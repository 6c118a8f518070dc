"""``fedchain verify --round N``: recompute a round from public data only and compare with the chain.

The verdict is a function of immutable inputs only:

- the chain: the round record and its commitment list, read at one block and checked against
  the on-chain accumulator;
- the committed round config (its hash is on-chain): strategy, limits, sample cap;
- the round report (its hash is on-chain) and the blobs it says were accepted.

Contract addresses come from the auditor's own deployment file (or ``--contract``), never from
the API being audited. Every blob is hashed here. The model is recomputed from the updates the
report accepted, each re-checked; a rejected update whose blob is served is re-checked too (an
aggregator that rejects a valid update is caught). A ``missing_upload`` claim cannot be checked
from public data: it is listed as the aggregator's claim, and a node holding the aggregator's
signed receipt for that blob contests it (``--receipt FILE``), which fails the round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from eth_account.signers.local import LocalAccount

from fedchain.aggregator.compute import MISSING_UPLOAD, RoundContext, UpdateDecision, check_update, merge
from fedchain.aggregator.config import MAX_CONFIG_BYTES, RoundRules
from fedchain.apiclient import ApiClient
from fedchain.auth import recover_receipt_signer
from fedchain.chain.client import ChainClient
from fedchain.chain.deployment import Deployment, load_deployment
from fedchain.chain.types import Commitment, RoundStatus
from fedchain.codec import decode_json, decode_tensors, encode_json, tensor_spec
from fedchain.errors import AuthError, BlobError, ConfigError, FedchainError, Forbidden
from fedchain.settings import REPO_ROOT
from fedchain.strategy import get_strategy


@dataclass
class VerifyResult:
    round_id: int
    ok: bool
    onchain_model_hash: str | None = None
    recomputed_model_hash: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Rejections the aggregator claims that public data cannot confirm (node, reason).
    claims: list[str] = field(default_factory=list)
    rejected: list[UpdateDecision] = field(default_factory=list)


def auditor_deployment(rpc_url: str, deployments_dir: Path, contract: str | None) -> Deployment:
    """The deployment to audit: ``--contract`` (the TrainingRounds address), else the auditor's own
    ``deployments/<chainId>.json``. Never the API's ``/deployment``: that is the party audited."""
    from fedchain.chain.client import connect_web3

    w3 = connect_web3(rpc_url)
    chain_id = int(w3.eth.chain_id)
    if contract:
        from eth_utils import is_address
        from fedchain.address import to_checksum_address

        if not is_address(contract):
            raise ConfigError(f"--contract {contract!r} is not an address", hint="pass the TrainingRounds address")
        address = to_checksum_address(contract)
        return Deployment(chain_id=chain_id, rpc_url=rpc_url, deployer="", block=0, registry_address=address,
                          rounds_address=address, aggregator="", grace_period=0)
    try:
        return load_deployment(deployments_dir, chain_id)
    except ConfigError as exc:
        raise ConfigError(
            f"no deployment file for chain {chain_id} in {deployments_dir}: verify does not take contract "
            "addresses from the API it audits",
            hint="pass --contract <TrainingRounds address> (from the federation's published deployment, or the "
                 "deploy transaction), or --deployments-dir with your own copy of <chainId>.json",
        ) from exc


def load_receipts(paths: Sequence[Path]) -> list[dict]:
    out = []
    for p in paths:
        try:
            out.append(json.loads(Path(p).read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read receipt {p}: {exc}", hint="pass the round-N.json a node kept") from exc
    return out


def verify_round(
    round_id: int, *, rpc_url: str, api_url: str, deployments_dir: Path, contract: str | None = None,
    reader: LocalAccount | None = None, receipts: Sequence[dict] = (), log: Callable[[str], None] = print,
    retry_seconds: float = 30.0,
) -> VerifyResult:
    dep = auditor_deployment(rpc_url, deployments_dir, contract)
    chain = ChainClient.connect(rpc_url, repo_root=REPO_ROOT, deployment=dep)
    api = ApiClient(api_url, log=log, retry_seconds=retry_seconds, reader=reader, chain_id=chain.chain_id,
                    contract=chain.rounds_address)
    block = chain.block_number()
    info = chain.get_round(round_id, block)
    result = VerifyResult(round_id=round_id, ok=False, onchain_model_hash=info.global_model_hash)
    if info.status == RoundStatus.OPEN:
        raise FedchainError(f"round {round_id} is still open: nothing to verify yet",
                            hint="wait until it is finalized or expired")
    if info.status == RoundStatus.EXPIRED:
        result.ok = True
        result.notes.append(f"round {round_id} expired without a result: no model was produced")
        log(result.notes[-1])
        return result
    commitments = chain.commitments(round_id, block, info=info)

    def required(h: str, what: str, limit: int) -> bytes:
        try:
            return api.blob(h, max_bytes=limit)
        except BlobError as exc:
            raise FedchainError(f"cannot check the {what} {h}: {exc.message}",
                                hint="the aggregator must serve every public blob a round references") from exc

    config = decode_json(required(info.config_hash, "round config", MAX_CONFIG_BYTES), max_bytes=MAX_CONFIG_BYTES)
    rules = RoundRules.of(config)
    base = decode_tensors(required(info.base_model_hash, "base model", rules.max_update_bytes),
                          max_bytes=rules.max_update_bytes)
    assert info.report_hash is not None and info.global_model_hash is not None
    report = decode_json(required(info.report_hash, "round report", MAX_CONFIG_BYTES), max_bytes=MAX_CONFIG_BYTES)
    log(f"round {round_id}: {len(commitments)} commitment(s) on-chain (accumulator checked), strategy "
        f"{rules.strategy['name']}")

    ctx = RoundContext(chain.chain_id, chain.rounds_address, round_id)
    receipts_by_node = _valid_receipts(receipts, chain, round_id, log)
    if rules.is_secure:
        return _verify_secure(result, chain, api, info, block, config, base, report, ctx, receipts_by_node,
                              required, log)
    # A stateful strategy (server optimiser) starts from the state the round that produced the base
    # model left; the config commits its hash, and that round's report names the same blob.
    state_hash = (config.get("strategy") or {}).get("state_hash")
    if get_strategy(rules.strategy["name"], rules.strategy.get("params") or {}).stateful:
        left = _state_left_for(chain, info.base_model_hash, round_id, block,
                               lambda h: decode_json(required(h, "earlier round report", MAX_CONFIG_BYTES),
                                                     max_bytes=MAX_CONFIG_BYTES))
        if state_hash != left:
            result.problems.append(f"the round starts from strategy state {state_hash}, but the round that produced "
                                   f"its base model left {left}")
    state = (decode_tensors(required(state_hash, "strategy state", rules.max_update_bytes),
                            max_bytes=rules.max_update_bytes) if state_hash else None)
    audit(result, config, base, commitments, report, lambda h: _fetch_update(api, h, rules.max_update_bytes), ctx,
          receipts_by_node, onchain_model_hash=info.global_model_hash, onchain_accepted=info.accepted_count,
          min_updates=info.min_updates, state=state)
    if isinstance(report, dict) and report.get("server_state_hash"):
        try:
            required(report["server_state_hash"], "strategy state the round left", rules.max_update_bytes)
        except FedchainError as exc:
            result.problems.append(exc.message)
    return _conclude(result, required, info.global_model_hash, rules.max_update_bytes, log, "rejected")


def judge_rejection(result: VerifyResult, c: Commitment, reason: str, data: bytes | None, receipt: dict | None,
                    checks_out: Callable[[bytes], bool], *, rejected_by: str) -> None:
    """One update the aggregator rejected (or, in a secure round, excluded at the seal), with the
    blob served now (``data``) and the node's receipt, if any. A ``missing_upload`` claim is not
    checkable from public data, and a blob served now must not change the verdict: only the
    aggregator's own signed receipt proves it false. Any other reason is re-checked on the blob,
    which the commitment binds: a blob that ``checks_out`` makes the rejection a problem."""
    code = reason.split(":", 1)[0]
    if code == MISSING_UPLOAD:
        if receipt is not None and str(receipt["blob_hash"]).lower() == c.update_hash:
            result.problems.append(f"{c.node}: {rejected_by} it as {MISSING_UPLOAD}, but the aggregator signed a "
                                   f"receipt for {c.update_hash}: the claim is false")
        else:
            result.claims.append(f"{c.node}: {reason} (the aggregator's claim; not checkable from public data; "
                                 "a node holding a receipt can contest it"
                                 + ("; a blob with this hash is served now" if data is not None else "") + ")")
    elif data is None:
        result.claims.append(f"{c.node}: {reason} (the aggregator's claim; the blob is not served, so it "
                             "cannot be re-checked)")
    elif checks_out(data):
        result.problems.append(f"{c.node}: {rejected_by} {c.update_hash} ({reason}) but it checks out")


def audit(
    result: VerifyResult,
    config: dict,
    base: dict,
    commitments: Sequence[Commitment],
    report: object,
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    receipts_by_node: dict[str, dict],
    *,
    onchain_model_hash: str,
    onchain_accepted: int,
    min_updates: int,
    state: dict | None = None,
) -> VerifyResult:
    """The pure part of ``verify``: check a report against the chain's commitments and recompute
    the model from the updates it accepts. Appends to ``result.problems`` and ``result.claims``."""
    problems = result.problems
    rules = RoundRules.of(config)
    entries = report.get("updates") if isinstance(report, dict) else None
    if not isinstance(report, dict) or not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append("the round report has no list of update decisions")
        return result
    by_node = {str(e.get("node", "")).lower(): e for e in entries}
    if sorted(by_node) != sorted(c.node.lower() for c in commitments) or len(by_node) != len(entries):
        problems.append("the report's updates do not list exactly the on-chain commitments")
    if report.get("global_model_hash") != onchain_model_hash:
        problems.append(f"the report's global_model_hash {report.get('global_model_hash')} differs from the chain's")
    spec = tensor_spec(base)
    checked: list[tuple[UpdateDecision, dict | None]] = []
    for c in sorted(commitments, key=lambda c: c.node.lower()):
        entry = by_node.get(c.node.lower(), {})
        reason = entry.get("reason")
        data = fetch(c.update_hash)
        if entry.get("accepted"):
            weights, why = check_update(data, c, spec, ctx, rules.max_update_bytes)
            if weights is None:
                problems.append(f"{c.node}: the report accepts {c.update_hash}, but it does not check out ({why})")
            checked.append((UpdateDecision(c.node, c.update_hash, c.num_samples, weights is not None, why), weights))
            continue
        judge_rejection(result, c, str(reason or ""), data, receipts_by_node.get(c.node.lower()),
                        lambda blob: check_update(blob, c, spec, ctx, rules.max_update_bytes)[0] is not None,
                        rejected_by="the report rejects")
        checked.append((UpdateDecision(c.node, c.update_hash, c.num_samples, False, reason), None))
    comp = merge(config, base, checked, min_updates=min_updates, state=state)
    result.recomputed_model_hash = comp.model_hash
    if comp.state_hash != report.get("server_state_hash"):
        problems.append(f"strategy state differs: report {report.get('server_state_hash')}, recomputed {comp.state_hash}")
    if encode_json(comp.details) != encode_json(report.get("strategy_details") or {}):
        problems.append("the report's strategy_details differ from the recomputed ones")
    result.rejected = comp.rejected
    if comp.model_hash != onchain_model_hash:
        problems.append(f"global model hash differs: chain {onchain_model_hash}, recomputed {comp.model_hash}")
    if len(comp.accepted) != onchain_accepted:
        problems.append(f"accepted count differs: chain {onchain_accepted}, recomputed {len(comp.accepted)}")
    return result


def _verify_secure(result: VerifyResult, chain: ChainClient, api: ApiClient, info, block: int, config: dict,
                   base: dict, report: object, ctx: RoundContext, receipts_by_node: dict[str, dict],
                   required: Callable[[str, str, int], bytes], log: Callable[[str], None]) -> VerifyResult:
    """A secure round: the seal's exclusions re-checked, the sum unmasked from the masked blobs and
    the posted unmasking blobs, the model and the privacy accounting recomputed."""
    from fedchain.aggregator.secure_compute import SecureRoundInputs

    rules = RoundRules.of(config)
    view = chain.secure_view(info.round_id, block)
    log(f"round {info.round_id}: secure; {len(view.selected)} selected, {len(view.commitments)} committed, "
        f"{len(view.excluded)} excluded at the seal, {len(view.posts)} unmasking post(s) (accumulators checked)")
    inputs = SecureRoundInputs.of(view)
    prev_hash = (rules.privacy or {}).get("state_hash")
    left = _state_left_for(chain, info.base_model_hash, info.round_id, block,
                           lambda h: decode_json(required(h, "earlier round report", MAX_CONFIG_BYTES),
                                                 max_bytes=MAX_CONFIG_BYTES), key="privacy_state_hash")
    if prev_hash != left:
        result.problems.append(f"the round's privacy accounting starts from state {prev_hash}, but the round that "
                               f"produced its base model left {left}")
    prev = (decode_json(required(prev_hash, "privacy accountant state", MAX_CONFIG_BYTES), max_bytes=MAX_CONFIG_BYTES)
            if prev_hash else None)

    def fetch(h: str) -> bytes | None:
        return _fetch_update(api, h, rules.max_update_bytes)

    audit_secure(result, config, base, inputs, report, fetch, ctx, receipts_by_node,
                 onchain_model_hash=info.global_model_hash, onchain_accepted=info.accepted_count,
                 min_updates=info.min_updates, prev_privacy=prev)
    privacy = report.get("privacy") if isinstance(report, dict) else None
    if isinstance(privacy, dict):
        log(f"  privacy: ε = {privacy.get('epsilon'):.4g} at δ = {privacy.get('delta'):g} after "
            f"{len(privacy.get('rounds', []))} secure round(s) (recomputed)")
    return _conclude(result, required, info.global_model_hash, rules.max_update_bytes, log, "excluded")


def _conclude(result: VerifyResult, required: Callable[[str, str, int], bytes], model_hash: str, limit: int,
              log: Callable[[str], None], rejected: str) -> VerifyResult:
    """The end of every verification: the model must be served; then the verdict and its lines."""
    try:
        required(model_hash, "global model", limit)
    except FedchainError as exc:
        result.problems.append(exc.message)
    for d in result.rejected:
        log(f"  {rejected} {d.node}: {d.reason}")
    for claim in result.claims:
        log(f"  claim {claim}")
    result.ok = not result.problems
    return result


def audit_secure(
    result: VerifyResult,
    config: dict,
    base: dict,
    inputs: "object",
    report: object,
    fetch: Callable[[str], bytes | None],
    ctx: RoundContext,
    receipts_by_node: dict[str, dict],
    *,
    onchain_model_hash: str,
    onchain_accepted: int,
    min_updates: int,
    prev_privacy: dict | None = None,
) -> VerifyResult:
    """The pure part of verifying a secure round (``inputs``: a SecureRoundInputs read at one block)."""
    from dataclasses import replace

    from fedchain.aggregator.secure_compute import check_masked, compute_secure_round
    from fedchain.privacy.accountant import verify_state

    problems = result.problems
    rules = RoundRules.of(config)
    entries = report.get("updates") if isinstance(report, dict) else None
    secure = report.get("secure") if isinstance(report, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not isinstance(secure, dict):
        problems.append("the round report has no list of update decisions or no secure section")
        return result
    by_node = {str(e.get("node", "")).lower(): e for e in entries}
    if sorted(by_node) != sorted(c.node.lower() for c in inputs.commitments) or len(by_node) != len(entries):
        problems.append("the report's updates do not list exactly the on-chain commitments")
    if report.get("global_model_hash") != onchain_model_hash:
        problems.append(f"the report's global_model_hash {report.get('global_model_hash')} differs from the chain's")
    excluded = {e.lower() for e in inputs.excluded}
    if sorted(excluded) != sorted(str(e).lower() for e in secure.get("excluded", [])):
        problems.append("the report's excluded nodes differ from the seal's on-chain exclusions")
    spec = tensor_spec(base)
    s = inputs.secure_set()
    for c in inputs.commitments:
        if c.node.lower() not in excluded:
            continue
        judge_rejection(result, c, str(by_node.get(c.node.lower(), {}).get("reason") or ""), fetch(c.update_hash),
                        receipts_by_node.get(c.node.lower()),
                        lambda blob: check_masked(blob, c, rules=rules, spec=spec, ctx=ctx, secure_set=s) is None,
                        rejected_by="the seal excluded")
    # Recompute with the unmasking posts the aggregator used; each must be on-chain.
    onchain = {(n.lower(), h.lower()) for n, h in inputs.posts}
    used = [(str(p.get("node")), str(p.get("unmask_hash"))) for p in secure.get("posts", []) if isinstance(p, dict)]
    if not all((n.lower(), h.lower()) in onchain for n, h in used):
        problems.append("the report uses unmasking posts that are not on-chain")
        return result
    exclusions = {d["node"]: d.get("reason") for d in entries if not d.get("accepted")}
    comp = compute_secure_round(config, base, replace(inputs, posts=used), fetch, ctx, min_updates=min_updates,
                                exclusions=exclusions, prev_privacy=prev_privacy)
    result.recomputed_model_hash = comp.model_hash
    result.rejected = comp.rejected
    if comp.model_hash is None:
        problems.append(f"the round cannot be recomputed: {comp.details.get('error')}")
        return result
    if comp.model_hash != onchain_model_hash:
        problems.append(f"global model hash differs: chain {onchain_model_hash}, recomputed {comp.model_hash}")
    if len(comp.accepted) != onchain_accepted:
        problems.append(f"accepted count differs: chain {onchain_accepted}, recomputed {len(comp.accepted)}")
    state = comp.details.get("privacy_state")
    if encode_json(state) != encode_json(report.get("privacy")):
        problems.append("the report's privacy accounting differs from the recomputed one")
    elif state is not None:
        verify_state(state)
    for key in ("posters", "contributors", "range", "rejected", "inconsistent_share_owners"):
        if encode_json(comp.details.get("secure", {}).get(key)) != encode_json(secure.get(key)):
            problems.append(f"the report's secure.{key} differs from the recomputed one")
    return result


def _state_left_for(chain: ChainClient, base_model_hash: str, round_id: int, block: int,
                    report_of: Callable[[str], object], key: str = "server_state_hash") -> str | None:
    """The server state left by the finalized round whose model is ``base_model_hash`` (None: genesis)."""
    for r in range(round_id - 1, 0, -1):
        prev = chain.get_round(r, block)
        if prev.status == RoundStatus.FINALIZED and prev.global_model_hash == base_model_hash:
            report = report_of(prev.report_hash) if prev.report_hash else None
            h = report.get(key) if isinstance(report, dict) else None
            return h if isinstance(h, str) else None
    return None


def _fetch_update(api: ApiClient, h: str, limit: int) -> bytes | None:
    try:
        return api.blob(h, max_bytes=limit)
    except Forbidden as exc:
        raise FedchainError(f"the API will not show update {h} to this auditor: {exc.message}",
                            hint="update blobs are readable by registered nodes and auditors: pass a key "
                                 "(--keystore, or --dev-account on anvil) holding one of those roles") from exc
    except BlobError:
        return None


def _valid_receipts(receipts: Sequence[dict], chain: ChainClient, round_id: int,
                    log: Callable[[str], None]) -> dict[str, dict]:
    """Receipts for this round signed by a holder of AGGREGATOR_ROLE, by node (lower-case)."""
    out: dict[str, dict] = {}
    for r in receipts:
        if int(r.get("round", -1)) != round_id:
            continue
        try:
            signer = recover_receipt_signer(r["signature"], chain.chain_id, chain.rounds_address, round_id,
                                            r["node"], r["blob_hash"])
        except (AuthError, KeyError, TypeError) as exc:
            log(f"  receipt for {r.get('node')} is not a valid signature ({exc}); ignored")
            continue
        if not chain.has_role("AGGREGATOR_ROLE", signer):
            log(f"  receipt for {r.get('node')} is signed by {signer}, who is not an aggregator; ignored")
            continue
        out[str(r["node"]).lower()] = r
    return out
