"""SQL index of the chain's fedchain events plus round reports; rebuilt from the chain at will."""

from fedchain.index.indexer import Indexer, make_engine, skip_reason_label
from fedchain.index.models import (
    Base,
    BlockCheckpoint,
    Node,
    NodeEvent,
    Round,
    SkippedCommitment,
    SyncState,
    Update,
    Upload,
)

__all__ = [
    "Base", "BlockCheckpoint", "Indexer", "Node", "NodeEvent", "Round", "SkippedCommitment", "SyncState", "Update",
    "Upload", "make_engine", "skip_reason_label",
]
