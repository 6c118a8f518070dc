"""The index schema as of SCHEMA_VERSION 2 (fedchain 0.1.0): every table of fedchain.index.models.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-01

Written out in full (no import of the models), so that it keeps describing this revision when the
models change: a later change is a new revision that alters these tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HASH = sa.String(length=66)
ADDRESS = sa.String(length=42)
#: fedchain.index.models.UInt: a uint256 as a zero-padded 78-digit decimal string.
UINT = sa.String(length=78)


def upgrade() -> None:
    op.create_table(
        "block_checkpoints",
        sa.Column("block", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("block_hash", HASH, nullable=False),
        sa.PrimaryKeyConstraint("block"),
    )
    op.create_table(
        "node_events",
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("node", ADDRESS, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("metadata_hash", HASH, nullable=True),
        sa.Column("public_key", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("block", "log_index"),
    )
    op.create_index(op.f("ix_node_events_node"), "node_events", ["node"], unique=False)
    op.create_table(
        "nodes",
        sa.Column("address", ADDRESS, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("joined_block", sa.BigInteger(), nullable=False),
        sa.Column("metadata_hash", HASH, nullable=False),
        sa.Column("public_key", sa.String(), nullable=False),
        sa.Column("removed_block", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_table(
        "rounds",
        sa.Column("round_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("base_model_hash", HASH, nullable=False),
        sa.Column("config_hash", HASH, nullable=False),
        sa.Column("global_model_hash", HASH, nullable=True),
        sa.Column("report_hash", HASH, nullable=True),
        sa.Column("deadline", UINT, nullable=False),
        sa.Column("min_updates", sa.BigInteger(), nullable=False),
        sa.Column("max_samples", UINT, nullable=False),
        sa.Column("selection_rate", UINT, nullable=False),
        sa.Column("relay_cutoff", sa.BigInteger(), nullable=False),
        sa.Column("eligible_count", sa.BigInteger(), nullable=False),
        sa.Column("seed", HASH, nullable=True),
        sa.Column("commit_count", sa.BigInteger(), nullable=False),
        sa.Column("accepted_count", sa.BigInteger(), nullable=False),
        sa.Column("opened_block", sa.BigInteger(), nullable=False),
        sa.Column("opened_tx", HASH, nullable=False),
        sa.Column("open_gas_used", sa.BigInteger(), nullable=True),
        sa.Column("closed_block", sa.BigInteger(), nullable=True),
        sa.Column("closed_tx", HASH, nullable=True),
        sa.Column("close_gas_used", sa.BigInteger(), nullable=True),
        sa.Column("expired_by", ADDRESS, nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("strategy", sa.JSON(), nullable=True),
        sa.Column("report_merged", sa.Boolean(), nullable=False),
        sa.Column("report_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_index(op.f("ix_rounds_closed_block"), "rounds", ["closed_block"], unique=False)
    op.create_index(op.f("ix_rounds_opened_block"), "rounds", ["opened_block"], unique=False)
    op.create_index(op.f("ix_rounds_status"), "rounds", ["status"], unique=False)
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("rounds_address", ADDRESS, nullable=False),
        sa.Column("registry_address", ADDRESS, nullable=False),
        sa.Column("last_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block_hash", HASH, nullable=True),
        sa.Column("deploy_block_hash", HASH, nullable=True),
        sa.Column("genesis_model_hash", HASH, nullable=True),
        sa.Column("genesis_block", sa.BigInteger(), nullable=True),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "uploads",
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        sa.Column("node", ADDRESS, nullable=False),
        sa.Column("blob_hash", HASH, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "node"),
    )
    op.create_table(
        "skipped_commitments",
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        sa.Column("node", ADDRESS, nullable=False),
        sa.Column("reason_code", sa.Integer(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.PrimaryKeyConstraint("tx_hash", "log_index"),
    )
    op.create_index(op.f("ix_skipped_commitments_block"), "skipped_commitments", ["block"], unique=False)
    op.create_index(op.f("ix_skipped_commitments_round_id"), "skipped_commitments", ["round_id"], unique=False)
    op.create_table(
        "updates",
        sa.Column("round_id", sa.BigInteger(), nullable=False),
        sa.Column("node", ADDRESS, nullable=False),
        sa.Column("update_hash", HASH, nullable=False),
        sa.Column("num_samples", UINT, nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", HASH, nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("weight", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.PrimaryKeyConstraint("round_id", "node"),
    )
    op.create_index(op.f("ix_updates_block"), "updates", ["block"], unique=False)


def downgrade() -> None:
    for name, table in (("ix_updates_block", "updates"), ("ix_skipped_commitments_round_id", "skipped_commitments"),
                        ("ix_skipped_commitments_block", "skipped_commitments")):
        op.drop_index(op.f(name), table_name=table)
    op.drop_table("updates")
    op.drop_table("skipped_commitments")
    op.drop_table("uploads")
    op.drop_table("sync_state")
    for name in ("ix_rounds_status", "ix_rounds_opened_block", "ix_rounds_closed_block"):
        op.drop_index(op.f(name), table_name="rounds")
    op.drop_table("rounds")
    op.drop_table("nodes")
    op.drop_index(op.f("ix_node_events_node"), table_name="node_events")
    op.drop_table("node_events")
    op.drop_table("block_checkpoints")
