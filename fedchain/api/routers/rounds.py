"""Round history: served from the index, with live chain data overlaid on the open round."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select

from fedchain.api.deps import MAX_ID, ChainDep, SessionDep, with_reason
from fedchain.api.schemas import (
    ErrorOut,
    RoundDetail,
    RoundPage,
    RoundStatusLabel,
    RoundSummary,
    SkippedOut,
    UpdateOut,
)
from fedchain.chain.types import ChainReader, RoundInfo, RoundStatus
from fedchain.errors import NotFound
from fedchain.index.indexer import skip_reason_label
from fedchain.index.models import ROUND_OPEN, Round

ZERO_HASH = "0x" + "00" * 32

log = logging.getLogger(__name__)

router = APIRouter(prefix="/rounds", tags=["rounds"])


def _overlay(item: RoundSummary, info: RoundInfo) -> None:
    """Fields the chain knows before the index does (the index lags by up to one poll)."""
    item.status = info.status.label  # type: ignore[assignment]
    item.commit_count = info.commit_count
    item.accepted_count = info.accepted_count
    item.global_model_hash = info.global_model_hash
    item.report_hash = info.report_hash
    if info.closed_at and item.closed_block is None:
        item.closed_block = info.closed_at


def _live(chain: ChainReader, round_id: int) -> RoundInfo | None:
    try:
        return chain.get_round(round_id)
    except Exception as exc:  # noqa: BLE001 - RPC down: the indexed data is the best there is
        log.debug("round %s: no live data (%s)", round_id, exc)
        return None


def _from_chain(info: RoundInfo) -> RoundDetail:
    """A round the chain has but the index has not reached yet."""
    return RoundDetail(
        round_id=info.round_id,
        status=info.status.label,  # type: ignore[arg-type]
        base_model_hash=info.base_model_hash,
        config_hash=info.config_hash,
        global_model_hash=info.global_model_hash,
        report_hash=info.report_hash,
        deadline=info.deadline,
        min_updates=info.min_updates,
        max_samples=info.max_samples,
        selection_rate=info.selection_rate,
        relay_cutoff=info.relay_cutoff,
        eligible_count=info.eligible_count,
        seed=None if info.seed == ZERO_HASH else info.seed,
        commit_count=info.commit_count,
        accepted_count=info.accepted_count,
        opened_block=info.opened_at,
        opened_tx=None,
        open_gas_used=None,
        closed_block=info.closed_at or None,
        closed_tx=None,
        close_gas_used=None,
        expired_by=None,
        updates=[],
        skipped=[],
        metrics=None,
        strategy=None,
        report_error=None,
    )


@router.get("", response_model=RoundPage, summary="Rounds, newest first")
def list_rounds(
    session: SessionDep,
    chain: ChainDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[RoundStatusLabel | None, Query(description="only rounds in this state")] = None,
) -> RoundPage:
    query = select(Round)
    if status is not None:
        query = query.where(Round.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Round.round_id.desc()).offset(offset).limit(limit)).all()
    items = [RoundSummary.model_validate(r) for r in rows]
    for item in items:
        if item.status == ROUND_OPEN and (info := _live(chain, item.round_id)) is not None:
            _overlay(item, info)
    return RoundPage(items=items, total=total, offset=offset, limit=limit)


@router.get(
    "/{round_id}",
    response_model=RoundDetail,
    summary="One round: on-chain record, commitments, report outcome",
    responses={404: {"model": ErrorOut, "description": "no such round"}},
)
def get_round(round_id: Annotated[int, Path(ge=0, le=MAX_ID)], session: SessionDep, chain: ChainDep) -> RoundDetail:
    r = session.get(Round, round_id)
    if r is None:
        try:
            info = chain.get_round(round_id)
        except NotFound:
            info = None
        except Exception as exc:  # noqa: BLE001 - RPC down or confused: say what we know
            raise with_reason(
                NotFound(f"round {round_id} is not in the index, and the chain cannot be asked ({exc})"),
                "unknown_round",
            ) from exc
        if info is None or info.status == RoundStatus.NONE:
            raise with_reason(
                NotFound(f"round {round_id} does not exist", hint="GET /rounds lists the rounds"), "unknown_round"
            )
        return _from_chain(info)
    detail = RoundDetail.model_validate(
        {
            **RoundSummary.model_validate(r).model_dump(),
            "updates": [UpdateOut.model_validate(u) for u in r.updates],
            "skipped": [
                SkippedOut(node=k.node, reason=skip_reason_label(k.reason_code), reason_code=k.reason_code,
                           block=k.block, tx_hash=k.tx_hash)
                for k in r.skipped
            ],
            "strategy": r.strategy,
            "report_error": r.report_error,
        }
    )
    if detail.status == ROUND_OPEN and (info := _live(chain, round_id)) is not None:
        _overlay(detail, info)
    return detail
