"""The aggregator's REST API (FastAPI)."""

from fedchain.api.app import create_app

__all__ = ["create_app"]
