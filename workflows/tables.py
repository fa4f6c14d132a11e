"""The tables, as SQLModel models: the one definition the migrations, the SQLAlchemy
queries and the hot statements of `sqlrows` are all checked against."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import JSON, Column, Field, SQLModel

JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflows"
    # The sweep claims the due workflows of the types its process runs: on (type, due_at)
    # it reads only those, however many of other types wait (on `due_at` alone it would
    # step over them at every sweep). It also serves lookups by type alone.
    __table_args__ = (sa.Index("ix_workflows_type_due_at", "type", "due_at"),)

    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=200)
    status: str = Field(index=True, max_length=16)
    data: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    state: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    output: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(sa.Text, nullable=True))
    version: int = 0
    attempts: int = 0
    due_at: datetime | None = Field(default=None, index=True)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class EventRow(SQLModel, table=True):
    """The audit trail: every callback and operator action, in the same transaction."""

    __tablename__ = "workflow_events"

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=32)
    name: str = Field(default="", max_length=200)
    thread_id: str = Field(default="", max_length=200)
    pc: int = 0
    input: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    output: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    actor: str = Field(default="", max_length=200)
    created_at: datetime


class TimerRow(SQLModel, table=True):
    """Durable timers: the resumer fires them when due, even after a restart."""

    __tablename__ = "workflow_timers"

    key: str = Field(primary_key=True, max_length=400)
    workflow_id: str = Field(index=True, max_length=64)
    request: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    fire_at: datetime = Field(index=True)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None


class EffectRow(SQLModel, table=True):
    """What steps and wait managers did outside a workflow, by key (see `DB.effect`)."""

    __tablename__ = "workflow_effects"

    key: str = Field(primary_key=True, max_length=400)
    workflow_id: str | None = Field(default=None, index=True, max_length=64)
    value: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    updated_at: datetime


class PartyRow(SQLModel, table=True):
    """Who has a part in which workflow (see `types.Party`), written by the workflows'
    steps when a part changes. Indexed by person: a person's open parts, oldest first, and
    their closed ones, latest first, are each one range of an index, however many
    workflows the database holds."""

    __tablename__ = "workflow_people"
    __table_args__ = (
        sa.Index("ix_workflow_people_open", "person", "open", "role", "since", "workflow_id"),
        sa.Index("ix_workflow_people_recent", "person", "open", "updated_at"),
    )

    person: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=64)
    role: str = Field(primary_key=True, max_length=32)
    part: str = Field(default="", primary_key=True, max_length=200)
    stand: str = Field(default="", max_length=400)
    open: bool = True
    title: str = Field(default="", max_length=400)
    since: datetime | None = None
    updated_at: datetime


W = WorkflowRow.__table__  # type: ignore[attr-defined]
E = EventRow.__table__  # type: ignore[attr-defined]
TM = TimerRow.__table__  # type: ignore[attr-defined]
EF = EffectRow.__table__  # type: ignore[attr-defined]
P = PartyRow.__table__  # type: ignore[attr-defined]

WORKFLOW_COLUMNS: tuple[str, ...] = tuple(W.c.keys())
EVENT_COLUMNS: tuple[str, ...] = tuple(E.c.keys())
TIMER_COLUMNS: tuple[str, ...] = tuple(TM.c.keys())
EFFECT_COLUMNS: tuple[str, ...] = tuple(EF.c.keys())
PARTY_COLUMNS: tuple[str, ...] = tuple(P.c.keys())
