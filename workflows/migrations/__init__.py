"""Alembic migrations of the engine's tables (run by `workflows.schema`)."""
