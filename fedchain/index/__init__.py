"""SQL index of the chain's fedchain events plus round reports; rebuilt from the chain at will."""

from fedchain.index.indexer import Indexer, make_engine
from fedchain.index.models import Base, Node, Round, SyncState, Update, Upload

__all__ = ["Base", "Indexer", "Node", "Round", "SyncState", "Update", "Upload", "make_engine"]
