"""Registered nodes, from the registry events (NodeAdmitted / NodeRemoved / NodeUpdated)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from fedchain.api.deps import MAX_ID, SessionDep
from fedchain.api.schemas import NodeOut, NodePage
from fedchain.index.models import Node

router = APIRouter(prefix="/nodes", tags=["nodes"])


@router.get("", response_model=NodePage, summary="Nodes ever admitted, in order of joining (paginated)")
def list_nodes(
    session: SessionDep,
    active: Annotated[bool | None, Query(description="only active (true) or removed (false) nodes")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NodePage:
    query = select(Node)
    if active is not None:
        query = query.where(Node.active.is_(active))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Node.joined_block, Node.address).offset(offset).limit(limit)).all()
    return NodePage(items=[NodeOut.model_validate(n) for n in rows], total=total, offset=offset, limit=limit)
