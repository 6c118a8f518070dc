"""Every request/response model of the API (pydantic 2)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RoundStatusLabel = Literal["open", "finalized", "expired"]

_HASH = "0x + 64 lowercase hex digits"

#: What a blob hash in a path or body must look like (the service answers 400 bad_hash otherwise).
HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
#: An EIP-2098 compact signature (64 bytes) as 0x-hex.
COMPACT_SIGNATURE_PATTERN = r"^0x[0-9a-fA-F]{128}$"
#: On-chain uint64/uint256 values are JSON integers written exactly (no float rounding, no
#: strings); they can exceed 2^53, so JavaScript clients need a BigInt-aware parser for them.
_UINT64 = "uint64 on-chain: a JSON integer up to 2^64-1, written exactly"


class ErrorOut(BaseModel):
    """Body of every error response."""

    error: str = Field(description="Error class, e.g. InvalidBlob, AuthError, Conflict")
    reason: str = Field(description="Machine-readable code, e.g. non_finite, hash_mismatch, duplicate")
    detail: str = Field(description="Human-readable message")
    hint: str | None = Field(default=None, description="How to fix it, where there is a known fix")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    chain_id: int
    block: int | None = Field(description="Chain head, None when the RPC does not answer")
    rounds_contract: str
    registry_contract: str
    indexed_block: int | None = Field(description="Last block whose events are in the index")
    detail: str | None = Field(default=None, description="Why the service is degraded, or a notice that does "
                                                         "not degrade it ('chain restarted: index rebuilt ...', "
                                                         "'index rewound N chain reorganisation(s) ...')")


class DeploymentOut(BaseModel):
    """``deployments/<chainId>.json`` as the aggregator knows it (more keys may be present)."""

    model_config = ConfigDict(extra="allow")

    chain_id: int
    block: int = Field(description="Block the contracts were deployed in")
    contracts: dict[str, dict[str, Any]] = Field(description='{"NodeRegistry": {"address", ...}, "TrainingRounds": {...}}')


class UpdateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node: str
    update_hash: str = Field(description=_HASH)
    num_samples: int = Field(description=_UINT64)
    block: int
    tx_hash: str
    gas_used: int | None = Field(description="Gas of the whole transaction (shared by updates relayed in one batch)")
    accepted: bool | None = Field(description="From the round report; null until the report is indexed")
    reason: str | None = Field(description="Why the update was rejected (report reason code: message)")
    weight: float | None = Field(description="Weight in the aggregate, from the report")


class RoundSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    round_id: int
    status: RoundStatusLabel
    base_model_hash: str
    config_hash: str
    global_model_hash: str | None
    report_hash: str | None
    deadline: int = Field(description=f"Unix seconds (chain time); {_UINT64}")
    min_updates: int
    max_samples: int = Field(description=f"Largest numSamples a commitment may claim; {_UINT64}")
    selection_rate: int = Field(
        description=f"0: every eligible node; else a node is selected iff H(seed, node) >> 192 < rate; {_UINT64}"
    )
    relay_cutoff: int = Field(description="Seconds before the deadline after which relayed batches are refused")
    eligible_count: int = Field(description="Active nodes when the round opened (before sampling)")
    seed: str | None = Field(description=f"Selection seed ({_HASH}); null when the round is not sampled")
    commit_count: int
    accepted_count: int
    opened_block: int
    opened_tx: str | None
    open_gas_used: int | None
    closed_block: int | None
    closed_tx: str | None
    close_gas_used: int | None
    expired_by: str | None
    metrics: dict[str, Any] | None = Field(description="The report's metrics; null until the report is indexed")


class SkippedOut(BaseModel):
    """A relayed commitment that ``submitBatch`` skipped (``CommitmentSkipped``)."""

    node: str = Field(description="The recovered signer; the zero address if the signature did not recover")
    reason: str = Field(description="invalid_signature, not_eligible, already_submitted, zero_hash, zero_samples, "
                                    "too_many_samples (unknown_<n> for a code this version does not know)")
    reason_code: int = Field(description="The on-chain SkipReason value")
    block: int
    tx_hash: str


class RoundDetail(RoundSummary):
    updates: list[UpdateOut]
    skipped: list[SkippedOut] = Field(description="Relayed commitments the contract skipped, in chain order")
    strategy: dict[str, Any] | None = Field(description="The report's strategy {name, params}")
    report_error: str | None = Field(description="Why the report could not be merged, if it could not")


class RoundPage(BaseModel):
    items: list[RoundSummary]
    total: int
    offset: int
    limit: int


class NodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    address: str
    active: bool
    joined_block: int
    metadata_hash: str
    public_key: str = Field(description="0x hex; '0x' when none was registered")
    removed_block: int | None


class NodePage(BaseModel):
    items: list[NodeOut]
    total: int
    offset: int
    limit: int


class ReceiptOut(BaseModel):
    """The aggregator's EIP-712 signature over ``Receipt(round, node, blobHash)`` (domain "fedchain"
    version "2", the TrainingRounds deployment): proof that it had this node's blob."""

    round: int
    node: str = Field(description="The uploading node (checksummed)")
    blob_hash: str = Field(description=_HASH)
    signer: str = Field(description="The aggregator's address; the signature recovers to it")
    signature: str = Field(description="65-byte r||s||v signature, 0x-hex (fedchain.auth.recover_receipt_signer)")


class UploadOut(BaseModel):
    round: int
    node: str
    blob_hash: str
    size: int
    receipt: ReceiptOut | None = Field(
        default=None, description="The aggregator's signed receipt; null when it runs without a signing key"
    )


class CommitmentIn(BaseModel):
    """A node's EIP-712 ``Commitment(roundId, updateHash, numSamples)``, for the aggregator to relay."""

    model_config = ConfigDict(extra="forbid")

    update_hash: str = Field(pattern=HASH_PATTERN, description="The blob this node uploaded for the round")
    num_samples: int = Field(ge=1, le=2**64 - 1, description="At most the round's max_samples")
    signature: str = Field(pattern=COMPACT_SIGNATURE_PATTERN,
                           description="EIP-2098 compact signature (64 bytes, 0x-hex): fedchain.auth.sign_commitment")


class CommitmentOut(BaseModel):
    """A queued commitment: the aggregator relays it in its next ``submitBatch``."""

    round: int
    node: str = Field(description="The signer (checksummed)")
    update_hash: str = Field(description=_HASH)
    num_samples: int
    signature: str
    relay_closes_at: int = Field(description="Chain time (unix s) after which batches are refused: "
                                             "if the commitment is not on-chain by then, commit directly")


class UnmaskUploadOut(BaseModel):
    round: int
    node: str = Field(description="The survivor that signed the unmasking blob")
    blob_hash: str
    size: int
    relay: str | None = Field(default=None, description='"queued" when the aggregator will relay the hash on-chain')


class PrivacyOut(BaseModel):
    """The privacy accountant state after a round, as its report records it (docs/privacy.md)."""

    round: int = Field(description="The round the state is after (0: no round finalized yet)")
    mode: str | None = Field(description="The round's mode: transparent or secure")
    epsilon: float | None = Field(default=None, description="Total ε after the round at the state's δ; "
                                                            "null when no DP noise was accounted")
    delta: float | None = None
    state: dict[str, Any] | None = Field(
        description="The fedchain/privacy/v1 accountant state (recompute it with fedchain.privacy.accountant."
                    "verify_state); null for a round without DP noise")
