"""The default `DB`: SQLModel tables on SQLite (embedded default) or PostgreSQL.

One row per workflow holds everything (data, execution state, status, version, due time,
lease), so an operator can read and fix it in place. JSON columns are always written whole.

Two paths to the database:
- the hot path (`sqlrows`): the statements every step, callback, sweep, effect and party runs,
  written once over the tables' columns and run on the raw driver (sqlite3 on the event
  loop, asyncpg), because SQLAlchemy's per-statement work costs ten times the statement;
- SQLAlchemy Core for everything else: migrations, listings, history, tools.

Locking that really holds on both databases:
- SQLite has no `SELECT ... FOR UPDATE`, so every write transaction starts with
  `BEGIN IMMEDIATE`, which takes the database's write lock up front; WAL keeps readers
  unblocked. Inside one process an asyncio lock queues transactions on the connection.
- PostgreSQL takes `SELECT ... FOR UPDATE` on the row.
Both also check the version column on every write (optimistic checkpoints).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workflows import schema
from workflows.errors import CorruptWorkflow, DatabaseUnavailable, WorkflowNotFound
from workflows.sqlrows import PostgresRows, SQLiteRows, _data, _load_json, _state
from workflows.state import Status
from workflows.tables import E, P, W
from workflows.types import Party, Record, Timer

T = TypeVar("T")


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


def shown_url(url: str) -> str:
    """The URL as it can be printed or logged: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class CorruptRecord:
    """A stored workflow whose JSON does not decode: what can still be read of its row, and
    why the rest cannot, so an operator can find it and fix it in place."""

    id: str
    type: str
    status: str
    problem: str
    columns: dict[str, Any]
    """The row as stored (JSON columns as their raw text)."""
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SQLStore:
    """`DB` on SQLite or PostgreSQL; see the module docstring for the two paths.

    `fsync_steps`: commit every step checkpoint durably too (PostgreSQL: synchronously;
    SQLite: `synchronous=FULL`), instead of only the commits whose loss could be seen (see
    `sqlrows`).

    `migrate=False` opens an existing database as it is: `start()` refuses one without the
    tables, or with an older schema, instead of creating or upgrading them (for tools
    that only read or repair)."""

    def __init__(
        self, url: str, *, echo: bool = False, fsync_steps: bool = False, migrate: bool = True
    ) -> None:
        self.url = async_url(url)
        self.shown_url = shown_url(url)
        self._migrate = migrate
        self.is_sqlite = self.url.startswith("sqlite")
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._sync: Engine | None = None
        self._conn: Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.rows: SQLiteRows | PostgresRows
        self.sqlite_path: str | None = None
        if self.is_sqlite:
            path = make_url(self.url).database
            if not path or path == ":memory:":
                raise ValueError("SQLite needs a file (sqlite:///path.db); for tests use memory://")
            self.sqlite_path = path
            self.rows = SQLiteRows(path, fsync_steps=fsync_steps)
        else:
            dsn = make_url(self.url).set(drivername="postgresql")
            self.rows = PostgresRows(
                dsn.render_as_string(hide_password=False), fsync_steps=fsync_steps
            )

    @property
    def engine(self) -> AsyncEngine:
        """An asyncio SQLAlchemy engine on the same database, for tools and tests."""
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
            kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
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
        try:
            await self.ping()
        except (OSError, sa.exc.DBAPIError) as e:
            await self.close()
            reason = str(e.orig) if isinstance(e, sa.exc.DBAPIError) else str(e)
            raise DatabaseUnavailable(f"cannot connect to {self.shown_url}: {reason}") from None
        await self._run(schema.upgrade if self._migrate else schema.check_current)
        await self.rows.start()

    async def close(self) -> None:
        await self.rows.close()
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

    # --- the SQLAlchemy path ----------------------------------------------------------------

    async def _run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` over SQLAlchemy in one transaction (an exclusive one on SQLite, in a
        thread and queued behind the hot path's transactions)."""
        if isinstance(self.rows, SQLiteRows):
            async with self.rows.lock:
                assert self._thread is not None, "store not started"
                return await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._transaction, fn
                )
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None:
            assert self._sync is not None, "store not started"
            self._conn = self._sync.connect()
        with self._conn.begin():
            return fn(self._conn)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute(sa.text("SELECT 1")))

    # --- records (hot path) ---------------------------------------------------------------

    async def create(self, record: Record, committed: Callable[[], None] | None = None) -> None:
        await self.rows.insert(record, committed)

    async def get(self, workflow_id: str) -> Record:
        return await self.rows.fetch(workflow_id)

    async def update(self, workflow_id: str, fn: Callable[[Record], Awaitable[T]]) -> T:
        """Read, apply `fn`, write: all under the exclusive lock, in one transaction,
        durable on return unless `fn` cleared `Record.flush_now` (then it reaches the disk
        with the next durable commit, or within milliseconds: see `sqlrows`)."""
        read: list[Record] = []
        async with self.rows.transaction(lambda: read[0].flush_now) as conn:
            record = await self.rows.fetch_locked(conn, workflow_id)
            read.append(record)
            result = await fn(record)
            await self.rows.write(conn, record)
        record.version += 1
        record.audit = []
        record.flush_now = True
        return result

    async def save(self, record: Record) -> bool:
        if not await self.rows.save(record):
            return False
        record.version += 1
        record.audit = []
        return True

    async def mark_failed(self, workflow_id: str, error: str) -> None:
        """Fail a row without parsing it (its JSON may be what is broken)."""
        await self.rows.mark_failed(workflow_id, error)

    async def renew_lease(self, workflow_id: str, owner: str, until: datetime) -> bool:
        """Keep `owner`'s lease until `until` (False: it is not `owner`'s any more)."""
        return await self.rows.renew_lease(workflow_id, owner, until)

    async def due(self, now: datetime, limit: int, types: Collection[str]) -> list[str]:
        """Ids of workflows of `types` due for execution whose lease is free or expired."""
        return await self.rows.due(now, limit, types)

    async def claim_due(
        self, now: datetime, owner: str, until: datetime, limit: int, types: Collection[str]
    ) -> list[str]:
        """Lease up to `limit` due workflows of `types` (those `owner` runs) whose lease is
        free or expired to `owner`. PostgreSQL skips rows another process is claiming
        (`FOR UPDATE SKIP LOCKED`)."""
        return await self.rows.claim_due(now, owner, until, limit, types)

    async def count_unknown_types(
        self, now: datetime, types: Collection[str], limit: int = 10_000
    ) -> dict[str, int]:
        """Due workflows that no live process holds, of types not in `types`, by type (the
        oldest `limit` of them)."""
        return await self.rows.count_unknown_types(now, types, limit)

    async def claim_timers(
        self,
        until: datetime,
        owner: str,
        lease_until: datetime,
        now: datetime,
        limit: int,
        types: Collection[str],
    ) -> list[Timer]:
        """Lease the timers due by `until` that no live process holds, to `owner`, except
        those of workflows whose type is not in `types`."""
        return await self.rows.claim_timers(until, owner, lease_until, now, limit, types)

    async def add_timer(self, timer: Timer) -> Timer:
        """Insert the timer unless one with its key exists; return the stored one (so a
        repeated setup keeps the original deadline)."""
        return await self.rows.add_timer(timer)

    async def delete_timer(self, key: str) -> None:
        await self.rows.delete_timer(key)

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]:
        return await self.rows.due_timers(until, limit)

    # --- listings (SQLAlchemy path) ---------------------------------------------------------

    async def list_workflows(
        self,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        type: str | None = None,
        created_before: datetime | None = None,
    ) -> list[Record]:
        """The records, or `CorruptWorkflow` for the first that does not decode."""
        entries = await self.listing(status, limit, newest_first, type, created_before)
        for entry in entries:
            if isinstance(entry, CorruptRecord):
                raise CorruptWorkflow(entry.problem)
        return entries  # type: ignore[return-value]

    async def listing(
        self,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        type: str | None = None,
        created_before: datetime | None = None,
    ) -> list[Record | CorruptRecord]:
        """Like `list_workflows`, but a row whose JSON does not decode is listed as a
        `CorruptRecord` instead of failing the listing (an operator looks for exactly those)."""
        order = W.c.created_at.desc() if newest_first else W.c.created_at
        query = _RAW.order_by(order).limit(limit)
        if status is not None:
            query = query.where(W.c.status == status)
        if type is not None:
            query = query.where(W.c.type == type)
        if created_before is not None:
            query = query.where(W.c.created_at < created_before)
        return await self._run(lambda conn: [_entry(r._mapping) for r in conn.execute(query)])

    async def read(self, workflow_id: str) -> Record | CorruptRecord:
        """One workflow as `listing` gives it: a corrupt row comes back as what it is."""
        query = _RAW.where(W.c.id == workflow_id)
        rows = await self._run(lambda conn: [_entry(r._mapping) for r in conn.execute(query)])
        if not rows:
            raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
        return rows[0]

    async def ids_starting_with(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids that begin with `prefix` (as typed by a person, `%` and `_` included)."""
        query = (
            sa.select(W.c.id)
            .where(W.c.id.startswith(prefix, autoescape=True))
            .order_by(W.c.id)
            .limit(limit)
        )
        return await self._run(lambda conn: list(conn.execute(query).scalars()))

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

    async def effect(self, key: str) -> Any:
        return await self.rows.effect(key)

    async def record_effect(self, key: str, value: Any, workflow_id: str | None = None) -> None:
        if value is None:
            raise ValueError("an effect records a value (None means nothing was recorded)")
        await self.rows.record_effect(key, value, workflow_id)

    # --- parties: who has a part in which workflow ------------------------------------------

    async def set_parties(self, parties: Sequence[Party]) -> None:
        if parties:
            await self.rows.set_parties(parties)

    async def parties(
        self,
        person: str,
        *,
        open: bool,
        role: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Party]:
        query = parties_query(person, open=open, role=role, limit=limit, offset=offset)
        return await self._run(
            lambda conn: [Party(**dict(r._mapping)) for r in conn.execute(query)]
        )

    async def count_parties(self, person: str, *, open: bool, role: str | None = None) -> int:
        query = count_parties_query(person, open=open, role=role)
        return int(await self._run(lambda conn: conn.execute(query).scalar() or 0))

    async def history(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of one workflow, or of all (oldest first)."""
        query = E.select().order_by(E.c.id)
        if workflow_id is not None:
            query = query.where(E.c.workflow_id == workflow_id)
        return await self._run(lambda conn: [dict(r) for r in conn.execute(query).mappings().all()])


def _sqlite_locking(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver, so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # What this path writes (migrations, parties, operator tools) is rare and must last.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


LIVE = (Status.RUNNING, Status.WAITING)


def parties_query(
    person: str, *, open: bool, role: str | None = None, limit: int = 20, offset: int = 0
) -> Any:
    """The query of `SQLStore.parties` (benchmarks print its plan): one range of an index,
    `ix_workflow_people_open` for open parts, `ix_workflow_people_recent` for closed."""
    query = _parties(sa.select(P), person, open, role)
    order = (P.c.since, P.c.workflow_id) if open else (P.c.updated_at.desc(),)
    return query.order_by(*order).limit(limit).offset(offset)


def count_parties_query(person: str, *, open: bool, role: str | None = None) -> Any:
    return _parties(sa.select(sa.func.count()).select_from(P), person, open, role)


def _parties(query: Any, person: str, open: bool, role: str | None) -> Any:
    """`person`'s open parts (of workflows still running: one that failed, or was
    cancelled before its steps said so, leaves them) or closed ones."""
    query = query.where(P.c.person == person, P.c.open == open)
    if role is not None:
        query = query.where(P.c.role == role)
    if open:
        query = query.join(W, W.c.id == P.c.workflow_id).where(W.c.status.in_(LIVE))
    return query


# The rows with their JSON columns as stored text: decoded here, one row at a time, so
# one corrupt row cannot fail a whole listing (SQLAlchemy's JSON type would decode them
# all while fetching).
_JSON_COLUMNS = ("data", "state", "output")
_RAW = sa.select(
    *[sa.cast(c, sa.Text).label(c.name) if c.name in _JSON_COLUMNS else c for c in W.c]
)


def _entry(m: Mapping[Any, Any]) -> Record | CorruptRecord:
    try:
        return _record(m)
    except (CorruptWorkflow, TypeError, ValueError) as e:
        problem = str(e) if isinstance(e, CorruptWorkflow) else f"workflow {m['id']!r}: {e}"
        return CorruptRecord(
            id=m["id"],
            type=m["type"],
            status=m["status"],
            problem=problem,
            columns=dict(m),
            error=m["error"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


def _record(m: Mapping[Any, Any]) -> Record:
    """The same decoding, and the same complaints, as the hot path's."""
    wid = m["id"]
    try:
        output = _load_json(m["output"])
    except ValueError as e:
        raise CorruptWorkflow(f"workflow {wid!r}: output is not JSON: {e}") from e
    return Record(
        id=wid,
        type=m["type"],
        status=m["status"],
        data=_data(wid, m["data"]),
        state=_state(wid, m["state"]),
        version=m["version"],
        output=output,
        error=m["error"],
        attempts=m["attempts"],
        due_at=m["due_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
