"""The first schema: workflows, their audit trail, durable timers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", AutoString(length=64), primary_key=True),
        sa.Column("type", AutoString(length=200), nullable=False),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("state", JSONType, nullable=False),
        sa.Column("output", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", AutoString(length=200), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workflows_type", "workflows", ["type"])
    op.create_index("ix_workflows_status", "workflows", ["status"])
    op.create_index("ix_workflows_due_at", "workflows", ["due_at"])
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workflow_id", AutoString(length=64), nullable=False),
        sa.Column("kind", AutoString(length=32), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("thread_id", AutoString(length=200), nullable=False),
        sa.Column("pc", sa.Integer(), nullable=False),
        sa.Column("input", JSONType, nullable=True),
        sa.Column("output", JSONType, nullable=True),
        sa.Column("actor", AutoString(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workflow_events_workflow_id", "workflow_events", ["workflow_id"])
    op.create_table(
        "workflow_timers",
        sa.Column("key", AutoString(length=400), primary_key=True),
        sa.Column("workflow_id", AutoString(length=64), nullable=False),
        sa.Column("request", JSONType, nullable=False),
        sa.Column("fire_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workflow_timers_workflow_id", "workflow_timers", ["workflow_id"])
    op.create_index("ix_workflow_timers_fire_at", "workflow_timers", ["fire_at"])


def downgrade() -> None:
    op.drop_table("workflow_timers")
    op.drop_table("workflow_events")
    op.drop_table("workflows")
