"""Who has a part in which workflow, indexed by person (an App Home's inbox reads it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_people",
        sa.Column("person", AutoString(length=64), primary_key=True),
        sa.Column("workflow_id", AutoString(length=64), primary_key=True),
        sa.Column("role", AutoString(length=32), primary_key=True),
        sa.Column("part", AutoString(length=200), primary_key=True),
        sa.Column("stand", AutoString(length=400), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("title", AutoString(length=400), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_workflow_people_open",
        "workflow_people",
        ["person", "open", "role", "since", "workflow_id"],
    )
    op.create_index(
        "ix_workflow_people_recent", "workflow_people", ["person", "open", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_people_recent", "workflow_people")
    op.drop_index("ix_workflow_people_open", "workflow_people")
    op.drop_table("workflow_people")
