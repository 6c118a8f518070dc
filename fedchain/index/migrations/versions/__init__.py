"""Alembic revisions of the index schema, oldest first (``0001_initial.py``...)."""
