"""The default `DB`: SQLModel tables on SQLite (embedded default) or PostgreSQL.

One row per workflow holds everything (data, execution state, status, version, due time,
lease), so an operator can read and fix it in place. Queries use SQLAlchemy Core on the
SQLModel tables: JSON columns are always written whole, never mutated in place.

Locking that really holds on both databases:
- SQLite has no `SELECT ... FOR UPDATE` (SQLAlchemy silently drops it), so every transaction
  starts with `BEGIN IMMEDIATE`, which takes the database's write lock up front; WAL keeps
  outside readers unblocked and `busy_timeout` makes other processes wait instead of fail.
  Inside one process an asyncio lock queues transactions, so they never spin in SQLite's
  busy handler.
- PostgreSQL takes `SELECT ... FOR UPDATE` on the row.
Both also check the version column on every write (optimistic checkpoints).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RootTransaction, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import JSON, Column, Field, SQLModel

from workflows import schema
from workflows.errors import CorruptWorkflow, WorkflowExists, WorkflowNotFound
from workflows.state import State
from workflows.types import CallbackRequest, Record, Timer

T = TypeVar("T")

JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflows"

    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(index=True, max_length=200)
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


W = WorkflowRow.__table__  # type: ignore[attr-defined]
E = EventRow.__table__  # type: ignore[attr-defined]
TM = TimerRow.__table__  # type: ignore[attr-defined]


def async_url(url: str) -> str:
    """Accept plain `sqlite:///x.db` / `postgresql://...` URLs and pick the async driver."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if not driver:
        driver = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}.get(backend, "")
        if not driver:
            raise ValueError(f"unsupported database URL {url!r}: use sqlite:// or postgresql://")
    return parsed.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False)


class SQLStore:
    """`DB` on SQLAlchemy Core.

    Every operation is one function over a synchronous SQLAlchemy `Connection`, run as one
    transaction. On PostgreSQL it runs on the asyncio engine (asyncpg) through
    `run_sync`; on SQLite on one `sqlite3` connection in a dedicated thread, one thread hop
    per transaction instead of one per statement (aiosqlite's cost), with an asyncio lock
    queueing the process's transactions in front of it.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._sync: Engine | None = None
        self._conn: Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        """An asyncio engine on the same database (the store's own on PostgreSQL; on SQLite
        one for tools and tests, created on first use)."""
        if self._engine is None:
            if not self._started:
                raise RuntimeError("store not started")
            self._engine = self._async_engine()
        return self._engine

    @property
    def _started(self) -> bool:
        return self._sync is not None or (not self.is_sqlite and self._engine is not None)

    def _async_engine(self) -> AsyncEngine:
        kwargs: dict[str, Any] = {"echo": self._echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _sqlite_locking(engine.sync_engine)
        return engine

    async def start(self) -> None:
        if self._started:
            return
        if self.is_sqlite:
            self._sync = sa.create_engine(self.url.replace("+aiosqlite", ""), echo=self._echo)
            _sqlite_locking(self._sync)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        else:
            self._engine = self._async_engine()
        await self._run(schema.upgrade)

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sqlite)
            self._thread.shutdown()
            self._thread = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _close_sqlite(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None

    # --- running transactions -------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction (an exclusive one on SQLite)."""
        if self.is_sqlite:
            async with self._lock:
                return await self._in_thread(self._transaction, fn)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._thread is not None, "store not started"
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connection(self) -> Connection:
        if self._conn is None:
            assert self._sync is not None, "store not started"
            self._conn = self._sync.connect()
        return self._conn

    def _begin_and_load(self, workflow_id: str) -> tuple[RootTransaction, Record]:
        conn = self._connection()
        transaction = conn.begin()
        try:
            return transaction, _load(conn, workflow_id, lock=False)
        except BaseException:
            transaction.rollback()
            raise

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        with conn.begin():
            return fn(conn)

    def _skip_locked(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """On PostgreSQL, rows another process is claiming right now are skipped."""
        return query if self.is_sqlite else query.with_for_update(skip_locked=True)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute(sa.text("SELECT 1")))

    # --- records ---------------------------------------------------------------------------

    async def create(self, record: Record) -> None:
        def insert(conn: Connection) -> None:
            conn.execute(W.insert().values(**_row(record)))
            _audit(conn, record)

        try:
            await self._run(insert)
        except IntegrityError as e:
            raise WorkflowExists(f"workflow {record.id!r} already exists") from e
        record.audit = []

    async def get(self, workflow_id: str) -> Record:
        return await self._run(lambda conn: _load(conn, workflow_id, lock=False))

    async def update(self, workflow_id: str, fn: Callable[[Record], Awaitable[T]]) -> T:
        """Read, apply `fn`, write: all under the exclusive lock. `fn` is async, so the
        transaction stays open around it (on SQLite, across two thread hops)."""
        if self.is_sqlite:
            async with self._lock:
                transaction, record = await self._in_thread(self._begin_and_load, workflow_id)
                try:
                    result = await fn(record)
                    await self._in_thread(_write_and_commit, transaction, record)
                except BaseException:
                    if transaction.is_active:
                        await asyncio.shield(self._in_thread(transaction.rollback))
                    raise
        else:
            async with self.engine.begin() as aconn:
                record = await aconn.run_sync(_load, workflow_id, True)
                result = await fn(record)
                await aconn.run_sync(_write, record)
        record.version += 1
        record.audit = []
        return result

    async def save(self, record: Record) -> bool:
        if not await self._run(lambda conn: _write(conn, record)):
            return False
        record.version += 1
        record.audit = []
        return True

    async def mark_failed(self, workflow_id: str, error: str) -> None:
        """Fail a row without parsing it (its JSON may be what is broken)."""
        statement = (
            W.update()
            .where(W.c.id == workflow_id)
            .values(
                status="failed",
                error=error,
                due_at=None,
                lease_owner=None,
                lease_expires_at=None,
                version=W.c.version + 1,
                updated_at=datetime.now(UTC),
            )
        )
        await self._run(lambda conn: conn.execute(statement))

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of workflows due for execution whose lease is free or expired."""
        query = _leasable(W.c.id, W.c.due_at, W.c.lease_expires_at, now, now, limit)
        return await self._run(lambda conn: [r[0] for r in conn.execute(query)])

    async def claim_due(self, now: datetime, owner: str, until: datetime, limit: int) -> list[str]:
        """Lease up to `limit` due workflows whose lease is free or expired to `owner`.
        PostgreSQL skips rows another process is claiming (`FOR UPDATE SKIP LOCKED`)."""
        candidates = self._skip_locked(
            _leasable(W.c.id, W.c.due_at, W.c.lease_expires_at, now, now, limit)
        )
        claim = (
            W.update()
            .where(W.c.id.in_(candidates.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=until, version=W.c.version + 1)
            .returning(W.c.id)
        )
        return await self._run(lambda conn: [r[0] for r in conn.execute(claim)])

    async def claim_timers(
        self, until: datetime, owner: str, lease_until: datetime, now: datetime, limit: int
    ) -> list[Timer]:
        """Lease the timers due by `until` that no live process holds, to `owner`."""
        candidates = self._skip_locked(
            _leasable(TM.c.key, TM.c.fire_at, TM.c.lease_expires_at, until, now, limit)
        )
        claim = (
            TM.update()
            .where(TM.c.key.in_(candidates.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=lease_until)
            .returning(*TM.c)
        )
        return await self._run(lambda conn: [_timer(r) for r in conn.execute(claim)])

    async def list_workflows(
        self,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        type: str | None = None,
        created_before: datetime | None = None,
    ) -> list[Record]:
        order = W.c.created_at.desc() if newest_first else W.c.created_at
        query = W.select().order_by(order).limit(limit)
        if status is not None:
            query = query.where(W.c.status == status)
        if type is not None:
            query = query.where(W.c.type == type)
        if created_before is not None:
            query = query.where(W.c.created_at < created_before)
        return await self._run(lambda conn: [_record(r) for r in conn.execute(query)])

    async def oldest_due(self, now: datetime) -> datetime | None:
        """When the longest-overdue workflow became due (uses the due_at index)."""
        query = sa.select(sa.func.min(W.c.due_at)).where(W.c.due_at <= now)
        value = await self._run(lambda conn: conn.execute(query).scalar())
        if isinstance(value, str):  # SQLite's min() returns the stored text
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(W.c.status, sa.func.count()).group_by(W.c.status)
        return await self._run(lambda conn: {r[0]: r[1] for r in conn.execute(query)})

    async def history(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of one workflow, or of all (oldest first)."""
        query = E.select().order_by(E.c.id)
        if workflow_id is not None:
            query = query.where(E.c.workflow_id == workflow_id)
        return await self._run(lambda conn: [dict(r) for r in conn.execute(query).mappings().all()])

    # --- timers ----------------------------------------------------------------------------

    async def add_timer(self, timer: Timer) -> Timer:
        """Insert the timer unless one with its key exists; return the stored one (so a
        repeated setup keeps the original deadline)."""
        insert = (sqlite.insert(TM) if self.is_sqlite else postgresql.insert(TM)).values(
            key=timer.key,
            workflow_id=timer.workflow_id,
            request=timer.request.model_dump(mode="json"),
            fire_at=timer.fire_at,
        )

        def add(conn: Connection) -> Timer:
            conn.execute(insert.on_conflict_do_nothing(index_elements=["key"]))
            return _timer(conn.execute(TM.select().where(TM.c.key == timer.key)).one())

        return await self._run(add)

    async def delete_timer(self, key: str) -> None:
        await self._run(lambda conn: conn.execute(TM.delete().where(TM.c.key == key)))

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]:
        query = TM.select().where(TM.c.fire_at <= until).order_by(TM.c.fire_at).limit(limit)
        return await self._run(lambda conn: [_timer(r) for r in conn.execute(query)])


def _leasable(
    key: Any, due: Any, lease_expires: Any, due_by: datetime, now: datetime, limit: int
) -> sa.Select[Any]:
    """Keys of rows due by `due_by` whose lease is free or has expired, soonest first."""
    return (
        sa.select(key)
        .where(due <= due_by)
        .where(sa.or_(lease_expires.is_(None), lease_expires < now))
        .order_by(due)
        .limit(limit)
    )


def _sqlite_locking(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver, so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _row(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "type": record.type,
        "status": record.status,
        "data": record.data,
        "state": record.state.model_dump(mode="json"),
        "output": record.output,
        "error": record.error,
        "version": record.version,
        "attempts": record.attempts,
        "due_at": record.due_at,
        "lease_owner": record.lease_owner,
        "lease_expires_at": record.lease_expires_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _record(row: Any) -> Record:
    m = row._mapping
    try:
        state = State.model_validate(m["state"])
    except ValidationError as e:
        raise CorruptWorkflow(f"workflow {m['id']!r}: execution state is invalid: {e}") from e
    return Record(
        id=m["id"],
        type=m["type"],
        status=m["status"],
        data=m["data"],
        state=state,
        version=m["version"],
        output=m["output"],
        error=m["error"],
        attempts=m["attempts"],
        due_at=m["due_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _timer(row: Any) -> Timer:
    m = row._mapping
    return Timer(
        key=m["key"],
        workflow_id=m["workflow_id"],
        request=CallbackRequest.model_validate(m["request"]),
        fire_at=m["fire_at"],
    )


def _load(conn: Connection, workflow_id: str, lock: bool) -> Record:
    query = W.select().where(W.c.id == workflow_id)
    if lock and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
    return _record(row)


def _write(conn: Connection, record: Record) -> bool:
    values = _row(record)
    del values["id"], values["created_at"]
    values["version"] = record.version + 1
    values["updated_at"] = datetime.now(UTC)
    result = conn.execute(
        W.update().where(W.c.id == record.id).where(W.c.version == record.version).values(**values)
    )
    if result.rowcount != 1:
        return False
    _audit(conn, record)
    return True


def _write_and_commit(transaction: RootTransaction, record: Record) -> None:
    _write(transaction.connection, record)
    transaction.commit()


def _audit(conn: Connection, record: Record) -> None:
    if not record.audit:
        return
    now = datetime.now(UTC)
    conn.execute(
        E.insert(),
        [
            {
                "workflow_id": record.id,
                "kind": a.kind,
                "name": a.name,
                "thread_id": a.thread_id,
                "pc": a.pc,
                "input": a.input,
                "output": a.output,
                "actor": a.actor,
                "created_at": now,
            }
            for a in record.audit
        ],
    )
