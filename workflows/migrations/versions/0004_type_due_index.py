"""The sweep claims only the workflow types its process runs: index (type, due_at).

It replaces the index on `type` alone, which it also serves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_workflows_type_due_at", "workflows", ["type", "due_at"])
    op.drop_index("ix_workflows_type", "workflows")


def downgrade() -> None:
    op.create_index("ix_workflows_type", "workflows", ["type"])
    op.drop_index("ix_workflows_type_due_at", "workflows")
