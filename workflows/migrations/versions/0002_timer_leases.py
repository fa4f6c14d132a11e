"""Timers are claimed with a lease, so each fires in one process only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_timers") as batch:
        batch.add_column(sa.Column("lease_owner", AutoString(length=200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_timers") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
