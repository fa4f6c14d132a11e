"""What steps and wait managers did outside a workflow, by key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflow_effects",
        sa.Column("key", AutoString(length=400), primary_key=True),
        sa.Column("workflow_id", AutoString(length=64), nullable=True),
        sa.Column("value", JSONType, nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workflow_effects_workflow_id", "workflow_effects", ["workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_workflow_effects_workflow_id", "workflow_effects")
    op.drop_table("workflow_effects")
