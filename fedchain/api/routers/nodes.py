"""Registered nodes, from NodeRegistry events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from fedchain.api.deps import SessionDep
from fedchain.api.schemas import NodeOut
from fedchain.index.models import Node

router = APIRouter(prefix="/nodes", tags=["nodes"])


@router.get("", response_model=list[NodeOut], summary="Nodes ever admitted, in order of joining")
def list_nodes(
    session: SessionDep,
    active: Annotated[bool | None, Query(description="only active (true) or removed (false) nodes")] = None,
) -> list[NodeOut]:
    query = select(Node)
    if active is not None:
        query = query.where(Node.active.is_(active))
    rows = session.scalars(query.order_by(Node.joined_block, Node.address)).all()
    return [NodeOut.model_validate(n) for n in rows]
