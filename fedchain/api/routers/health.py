"""Service health, and the deployment this aggregator serves."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request

from fedchain.address import to_checksum_address
from fedchain.api.deps import ChainDep, IndexerDep
from fedchain.api.schemas import DeploymentOut, HealthOut
from fedchain.api.services import loop_problem
from fedchain.errors import FedchainError

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Chain, index, round loop and service status")
def health(request: Request, chain: ChainDep, indexer: IndexerDep) -> HealthOut:
    """``ok`` when the chain answers, the last index sync succeeded and the round loop (when this
    process runs one) reports no problem; ``degraded`` (still HTTP 200: reads keep being served
    from the index) with ``detail`` saying why otherwise. Never a 500."""
    problems: list[str] = []
    block: int | None = None
    try:
        block = int(chain.block_number())
    except FedchainError as exc:
        problems.append(f"chain: {exc}")
    except Exception as exc:  # noqa: BLE001 - health must answer whatever the client raises
        log.warning("health: chain.block_number failed: %s: %s", type(exc).__name__, exc)
        problems.append(f"chain: {type(exc).__name__}")
    last_error = getattr(indexer, "last_error", None)
    if last_error:
        problems.append(f"index sync failing: {last_error}")
    indexed: int | None = None
    try:
        indexed = indexer.indexed_block()
    except Exception as exc:  # noqa: BLE001
        log.warning("health: index database unreadable: %s: %s", type(exc).__name__, exc)
        problems.append("index database unreadable")
    loop = loop_problem(getattr(request.app.state, "loop_status", None))
    if loop:
        problems.append(loop)
    return HealthOut(
        status="degraded" if problems else "ok",
        chain_id=int(chain.chain_id),
        block=block,
        rounds_contract=to_checksum_address(chain.rounds_address),
        registry_contract=to_checksum_address(chain.registry_address),
        indexed_block=indexed,
        # Index notices ("chain restarted: index rebuilt ...", reorgs rewound) do not degrade the status.
        detail="; ".join(problems + list(getattr(indexer, "notices", []))) or None,
    )


@router.get("/deployment", response_model=DeploymentOut, summary="The contracts this aggregator coordinates")
def deployment(chain: ChainDep) -> dict[str, Any]:
    """The deployment file (``deployments/<chainId>.json`` format) so nodes and auditors can find
    the contracts from the API URL alone. Always check ``chain_id`` against your own RPC."""
    dep = getattr(chain, "deployment", None)
    to_json = getattr(dep, "to_json", None)
    if callable(to_json):
        data = dict(to_json())
    else:
        data = {
            "chain_id": int(chain.chain_id),
            "block": int(chain.deploy_block),
            "contracts": {
                "NodeRegistry": {"address": to_checksum_address(chain.registry_address)},
                "TrainingRounds": {"address": to_checksum_address(chain.rounds_address)},
            },
        }
    return data
