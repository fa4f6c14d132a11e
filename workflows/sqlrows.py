"""The hot statements: what every step, callback and sweep runs, on the raw driver.

Building, compiling and processing a SQLAlchemy statement costs about ten times the
statement itself (~1 ms against ~80 us for a checkpoint on SQLite), and on SQLite a hop to
a database thread costs another ~100 us. So the few statements on the hot path are written
once here, over the column names of the SQLModel tables (a renamed column fails at import),
and run on the driver's own connection, storing exactly what SQLAlchemy would (JSON text,
UTC timestamps), so the SQLAlchemy side (migrations, listings, tools) reads the same rows.

- SQLite: the stdlib `sqlite3` connection is used on the event loop itself: a statement is
  tens of microseconds, less than a thread hop. A transaction first yields to the loop when
  the connection has run for a millisecond since it last did, so a long run of steps never
  holds up other tasks (a Slack acknowledgement, say) for longer than that.
  `busy_timeout` is 0, so a write lock held by another process never blocks the loop:
  `BEGIN IMMEDIATE` is retried with asyncio sleeps (SQLite's busy handler, in asyncio).
  An asyncio lock queues the process's own transactions on the one connection.
  Durability mirrors PostgreSQL's below: a step checkpoint commits with
  `synchronous=NORMAL` (no fsync; a power loss may roll back the last ones, and their steps
  run again), while every explicit transaction (a new workflow, an applied callback, setups,
  teardowns, timers, operator changes) and every recorded effect return only once the WAL
  is fsynced, as `synchronous=FULL` would, but grouped: one fsync, in a process of its
  own, serves every commit made before it began (`workflows.walsync`). The WAL is written
  in order, so that also makes the checkpoints before it durable. Claims are leases and
  need no fsync.
  One kind of durable commit does not wait: a setup's or a teardown's record after
  which the workflow waits for the outside world (`Record.flush_now`, cleared by the
  engine). Nothing relies on it before the next commit that is waited for, which covers
  it, so it joins that commit's fsync, or one started for it within `WalSync.defer`
  (5 ms): when answers come one after another, each waits for one fsync instead of the
  one the previous workflow's teardown took plus its own.
  `fsync_steps` makes every step checkpoint wait for the WAL's fsync too: on the loop
  itself when no round is under way (as `synchronous=FULL` would), else with the round's
  group, so concurrent workflows share them (`WalSync.sync_alone`).
- PostgreSQL: asyncpg pools. A step checkpoint is one `UPDATE` (one round trip). Unless
  `fsync_steps` is set, it runs on a pool whose sessions have `synchronous_commit=off`,
  and only the commits whose loss could be seen run on a second pool, at the server's own
  level (`on`, or a replication level): creating a workflow, applying a callback, every
  locked update (setups, teardowns, operator changes; unlike SQLite's, a setup's or
  teardown's record waits too: left to the WAL writer it could stay unflushed for three
  `wal_writer_delay`s). Round trips are what a PostgreSQL approval spends most on, so a
  record's audit entries are inserted by the statement that writes it (a `WITH`), a new
  workflow is one statement in an implicit transaction, and a connection goes back to its
  pool without asyncpg's reset query.
  PostgreSQL writes its WAL in
  order, so such a commit also makes every earlier checkpoint durable; what a server crash
  can lose is only the last step checkpoints, and their steps run again (steps run at least
  once). A crash of our own process loses nothing either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json

from workflows.errors import CorruptWorkflow, WorkflowExists, WorkflowNotFound
from workflows.state import State
from workflows.tables import (
    EFFECT_COLUMNS,
    EVENT_COLUMNS,
    PARTY_COLUMNS,
    TIMER_COLUMNS,
    WORKFLOW_COLUMNS,
)
from workflows.types import AuditEntry, CallbackRequest, Party, Record, Timer
from workflows.walsync import WalSync

log = logging.getLogger("workflows.sqlrows")

_COLS = ", ".join(WORKFLOW_COLUMNS)
_UPDATED = [c for c in WORKFLOW_COLUMNS if c not in ("id", "type", "created_at")]
_TIMER_COLS = ", ".join(c for c in TIMER_COLUMNS if c not in ("lease_owner", "lease_expires_at"))
_EVENT_COLS = [c for c in EVENT_COLUMNS if c != "id"]

SELECT = f"SELECT {_COLS} FROM workflows WHERE id = ?"
INSERT = f"INSERT INTO workflows ({_COLS}) VALUES ({', '.join('?' for _ in WORKFLOW_COLUMNS)})"
UPDATE = (
    f"UPDATE workflows SET {', '.join(f'{c} = ?' for c in _UPDATED)} WHERE id = ? AND version = ?"
)
# A step checkpoint that changes none of `Record.settled_columns`: indexes are left alone
# (on SQLite every index on an assigned column is rewritten; on PostgreSQL the update can be
# HOT), which halves the statement's cost.
_CHECKPOINTED = ("data", "state", "version", "lease_expires_at", "updated_at")
CHECKPOINT = (
    f"UPDATE workflows SET {', '.join(f'{c} = ?' for c in _CHECKPOINTED)} "
    "WHERE id = ? AND version = ?"
)
if not set(_CHECKPOINTED) <= set(_UPDATED):
    raise RuntimeError(f"checkpointed columns {_CHECKPOINTED} are not all in the table")
AUDIT = (
    f"INSERT INTO workflow_events ({', '.join(_EVENT_COLS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLS)})"
)
# A lease kept alive while its owner works: no version bump, so the owner's own next
# checkpoint still applies, and nothing if another process has claimed it since.
RENEW_LEASE = "UPDATE workflows SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?"
MARK_FAILED = (
    "UPDATE workflows SET status = 'failed', error = ?, due_at = NULL, lease_owner = NULL, "
    "lease_expires_at = NULL, version = version + 1, updated_at = ? WHERE id = ?"
)
DUE_TIMERS = (
    f"SELECT {_TIMER_COLS} FROM workflow_timers WHERE fire_at <= ? ORDER BY fire_at LIMIT ?"
)
# The claim queries: the inner SELECT is what the sweep's indexes serve ((type, due_at),
# fire_at). A process claims only the workflow types it runs, `{types}`: `(type IN (?, ...))`
# on SQLite, `(type = ANY(?))` on PostgreSQL (see `sqlite_types`, `PG_TYPES`); a workflow of
# a type it does not know waits for a process that does, and is never failed for it.
CLAIMABLE_WORKFLOWS = (
    "SELECT id FROM workflows WHERE {types} AND due_at <= ? "
    "AND (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY due_at LIMIT ?"
)
DUE = CLAIMABLE_WORKFLOWS  # read without claiming (the test kit's resumer)
# A timer is left to others when its workflow is of a type this process does not run; one
# whose workflow is gone is still claimed, so firing it drops it.
CLAIMABLE_TIMERS = (
    "SELECT key FROM workflow_timers WHERE fire_at <= ? "
    "AND (lease_expires_at IS NULL OR lease_expires_at < ?) "
    "AND NOT EXISTS (SELECT 1 FROM workflows WHERE workflows.id = workflow_timers.workflow_id "
    "AND NOT {types}) ORDER BY fire_at LIMIT ?"
)
# Due workflows no live process holds, of the types this process does not run, by type
# (the oldest `?` of them: the sweep runs it, so its cost is bounded, and grouping over the
# inner SELECT keeps it on the due_at index; grouped directly, SQLite reads all of
# (type, due_at) for its order).
UNKNOWN_TYPES = (
    "SELECT type, count(*) FROM (SELECT type FROM workflows WHERE due_at <= ? "
    "AND (lease_expires_at IS NULL OR lease_expires_at < ?) AND NOT {types} "
    "ORDER BY due_at LIMIT ?) AS due GROUP BY type"
)
PG_TYPES = "(type = ANY(?))"
_SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
CLAIM_WORKFLOWS = (
    "UPDATE workflows SET lease_owner = ?, lease_expires_at = ?, version = version + 1 "
    "WHERE id IN ({claimable}) RETURNING id"
)
CLAIM_TIMERS = (
    "UPDATE workflow_timers SET lease_owner = ?, lease_expires_at = ? "
    "WHERE key IN ({claimable}) RETURNING " + _TIMER_COLS
)
CLAIM_WORKFLOWS_SQLITE = CLAIM_WORKFLOWS.format(claimable=CLAIMABLE_WORKFLOWS)
CLAIM_TIMERS_SQLITE = CLAIM_TIMERS.format(claimable=CLAIMABLE_TIMERS)
ADD_TIMER = (
    f"INSERT INTO workflow_timers ({_TIMER_COLS}) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
GET_TIMER = f"SELECT {_TIMER_COLS} FROM workflow_timers WHERE key = ?"
DELETE_TIMER = "DELETE FROM workflow_timers WHERE key = ?"
# Effects: what a Slack manager or a step did outside a workflow ("posted it as ts …"), read
# and written several times per approval, so they are hot statements too; one upsert
# replaces what was there, even when another process inserted the key first.
_EFFECT_COLS = ("key", "workflow_id", "value", "updated_at")
if not set(_EFFECT_COLS) <= set(EFFECT_COLUMNS):
    raise RuntimeError(f"effect columns {_EFFECT_COLS} are not all in the table")
EFFECT = "SELECT value FROM workflow_effects WHERE key = ?"
RECORD_EFFECT = (
    f"INSERT INTO workflow_effects ({', '.join(_EFFECT_COLS)}) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _EFFECT_COLS[1:])
)

# Parties (who has a part in which workflow): written by a step whenever a part changes, so
# on the hot path too. A row whose stand, openness, title and since are unchanged keeps its
# updated_at (a step that runs again writes what is there). `{distinct}` is `IS NOT` on
# SQLite (any version), `IS DISTINCT FROM` on PostgreSQL.
_PARTY_COLS = (
    "person", "workflow_id", "role", "part", "stand", "open", "title", "since", "updated_at"
)  # fmt: skip
if set(_PARTY_COLS) != set(PARTY_COLUMNS):
    raise RuntimeError(f"party columns {_PARTY_COLS} are not the table's {PARTY_COLUMNS}")
_PARTY_KEY = ("person", "workflow_id", "role", "part")
_PARTY_SET = [c for c in _PARTY_COLS if c not in _PARTY_KEY]


@functools.cache
def set_parties_sql(rows: int, distinct: str) -> str:
    """The upsert of `rows` parties (`?` placeholders, row after row)."""
    one = "(" + ", ".join("?" for _ in _PARTY_COLS) + ")"
    quoted = [f'"{c}"' for c in _PARTY_COLS]
    changed = " OR ".join(
        f"workflow_people.{c} {distinct} excluded.{c}"
        for c in ("stand", '"open"', "title", "since")
    )
    return (
        f"INSERT INTO workflow_people ({', '.join(quoted)}) VALUES {', '.join([one] * rows)} "
        f"ON CONFLICT ({', '.join(_PARTY_KEY)}) DO UPDATE SET "
        + ", ".join(f'"{c}" = excluded."{c}"' for c in _PARTY_SET)
        + f" WHERE {changed}"
    )


def _party_values(parties: Sequence[Party], ts: Stamp) -> list[Any]:
    now = datetime.now(UTC)
    values: list[Any] = []
    for p in parties:
        values += (
            p.person,
            p.workflow_id,
            p.role,
            p.part,
            p.stand[:400],
            p.open,
            p.title[:400],
            ts(p.since),
            ts(p.updated_at or now),
        )
    return values


@functools.cache
def sqlite_types(sql: str, count: int) -> str:
    """`sql` with its `{types}` filter for `count` types, as SQLite takes a list."""
    return sql.format(types=f"(type IN ({', '.join(['?'] * count)}))")


def numbered(sql: str) -> str:
    """`?` placeholders to PostgreSQL's `$1, $2, ...` (no statement here has a literal `?`)."""
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


def _dump(value: Any) -> str:
    return to_json(value).decode()


def _load_json(value: Any) -> Any:
    # SQLite's JSON columns have numeric affinity: a JSON number comes back as a number.
    return from_json(value) if isinstance(value, str | bytes) else value


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (low byte of extended codes)


def sqlite_ts(value: datetime | None) -> str | None:
    """The text SQLModel's UTCDateTime stores on SQLite (compared as text by the sweep)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without "+00:00"


def _sqlite_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _busy(error: sqlite3.OperationalError) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_BUSY


class SQLiteRows:
    """The hot statements on one `sqlite3` connection, used from the event loop."""

    busy_wait = 30.0  # seconds to wait for another process's write lock, as busy_timeout did
    checkpoint_interval = 0.5  # seconds between WAL checkpoints

    def __init__(self, path: str, *, fsync_steps: bool = False) -> None:
        self.path = path
        self.fsync_steps = fsync_steps
        self._db: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()
        self._yielded = 0.0
        self._checkpointer: threading.Thread | None = None
        self.wal = WalSync(path)
        self._stop_checkpoints = threading.Event()

    async def _turn(self) -> None:
        """Statements never suspend: give other tasks their turn once a millisecond."""
        now = time.monotonic()
        if now - self._yielded > 0.001:
            self._yielded = now
            await asyncio.sleep(0)

    async def start(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=0")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # what must last waits for `WalSync`
        # WAL checkpoints (copying the log into the database, with an fsync) happen in a
        # thread of their own; the loop's connection only does one if that thread falls far
        # behind (at 10,000 pages instead of SQLite's 1,000).
        db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db = db
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="sqlite-checkpoints", daemon=True
        )
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(self.checkpoint_interval):
                with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    async def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None
        async with self.lock:  # after the transaction in progress, if any
            if self._db is not None:
                self._db.close()
                self._db = None
            self.wal.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store not started")
        return self._db

    async def _retry(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement, waiting (asynchronously) while another process writes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_wait
        delay = 0.001
        while True:
            try:
                return self.db.execute(sql, args)
            except sqlite3.OperationalError as e:
                if not _busy(e) or loop.time() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @asynccontextmanager
    async def transaction(
        self, durable: bool | Callable[[], bool] = True
    ) -> AsyncIterator[sqlite3.Connection]:
        """One exclusive transaction (`BEGIN IMMEDIATE` takes the write lock up front).

        `durable`: it returns once its commit is on disk, as PostgreSQL's durable commits
        wait for the WAL flush: committed as any other, then the WAL is fsynced (`WalSync`,
        which serves every commit made before it started with one fsync, off the loop).
        The WAL is written in order, so this also makes every earlier checkpoint durable.
        A callable is asked once the body has run: True is as above; False, that the
        commit must last but nobody waits for it (`WalSync.soon`)."""
        await self._turn()
        async with self.lock:
            await self._retry("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self._retry("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        if durable is False:
            return
        if durable is True or durable():
            await self.wal.sync()
        else:
            self.wal.soon()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[sqlite3.Connection]:
        """The connection outside any transaction (no other coroutine's is open on it)."""
        await self._turn()
        async with self.lock:
            yield self.db

    # --- workflows ---

    async def insert(self, record: Record, committed: Callable[[], None] | None = None) -> None:
        """Durable on return; `committed` is called between the commit and the fsync, so
        the new workflow's execution can start while the disk works."""
        try:
            async with self.transaction(durable=False) as db:
                db.execute(INSERT, _insert_values(record, sqlite_ts))
                _sqlite_audit(db, record)
        except sqlite3.IntegrityError as e:
            raise WorkflowExists(f"workflow {record.id!r} already exists") from e
        _stored(record)
        record.audit = []
        if committed is not None:
            committed()
        await self.wal.sync()

    async def fetch(self, workflow_id: str) -> Record:
        async with self.reading():
            row = (await self._retry(SELECT, (workflow_id,))).fetchone()
        return _sqlite_record(row, workflow_id)

    async def fetch_locked(self, db: sqlite3.Connection, workflow_id: str) -> Record:
        """Inside `transaction()`: the write lock is the database's, the row is ours."""
        return _sqlite_record(db.execute(SELECT, (workflow_id,)).fetchone(), workflow_id)

    async def write(self, db: sqlite3.Connection, record: Record) -> bool:
        if db.execute(*_sqlite_save(record)).rowcount != 1:
            return False
        _sqlite_audit(db, record)
        _stored(record)
        return True

    async def save(self, record: Record) -> bool:
        if record.audit:
            async with self.transaction() as db:
                return await self.write(db, record)
        # One statement is a transaction of its own: no BEGIN and COMMIT round.
        sql, args = _sqlite_save(record)
        await self._turn()
        async with self.lock:
            saved = (await self._retry(sql, args)).rowcount == 1
        if saved:
            _stored(record)
            if self.fsync_steps:  # every checkpoint on disk before the next step
                await self.wal.sync_alone()
        return saved

    async def mark_failed(self, workflow_id: str, error: str) -> None:
        async with self.transaction() as db:
            db.execute(MARK_FAILED, (error, sqlite_ts(datetime.now(UTC)), workflow_id))

    async def renew_lease(self, workflow_id: str, owner: str, until: datetime) -> bool:
        await self._turn()
        async with self.lock:  # no fsync: a renewal lost in a crash just expires
            cursor = await self._retry(RENEW_LEASE, (sqlite_ts(until), workflow_id, owner))
        return bool(cursor.rowcount == 1)

    async def due(self, now: datetime, limit: int, types: Collection[str]) -> list[str]:
        if not types:
            return []
        ts = sqlite_ts(now)
        sql = sqlite_types(DUE, len(types))
        async with self.reading():
            return [r[0] for r in await self._retry(sql, (*types, ts, ts, limit))]

    async def claim_due(
        self, now: datetime, owner: str, until: datetime, limit: int, types: Collection[str]
    ) -> list[str]:
        if not types:
            return []
        ts = sqlite_ts(now)
        sql = sqlite_types(CLAIM_WORKFLOWS_SQLITE, len(types))
        args = (owner, sqlite_ts(until), *types, ts, ts, limit)
        async with self.transaction(durable=False) as db:  # a lost lease just expires
            return [r[0] for r in db.execute(sql, args)]

    async def count_unknown_types(
        self, now: datetime, types: Collection[str], limit: int
    ) -> dict[str, int]:
        ts = sqlite_ts(now)
        sql = sqlite_types(UNKNOWN_TYPES, len(types))
        async with self.reading():
            return dict(await self._retry(sql, (ts, ts, *types, limit)))

    # --- timers ---

    async def claim_timers(
        self,
        until: datetime,
        owner: str,
        lease_until: datetime,
        now: datetime,
        limit: int,
        types: Collection[str],
    ) -> list[Timer]:
        if not types:
            return []
        sql = sqlite_types(CLAIM_TIMERS_SQLITE, len(types))
        args = (owner, sqlite_ts(lease_until), sqlite_ts(until), sqlite_ts(now), *types, limit)
        async with self.transaction(durable=False) as db:
            return [_sqlite_timer(r) for r in db.execute(sql, args).fetchall()]

    async def add_timer(self, timer: Timer) -> Timer:
        args = (
            timer.key,
            timer.workflow_id,
            timer.request.model_dump_json(),
            sqlite_ts(timer.fire_at),
        )
        async with self.transaction() as db:
            db.execute(ADD_TIMER, args)
            return _sqlite_timer(db.execute(GET_TIMER, (timer.key,)).fetchone())

    async def delete_timer(self, key: str) -> None:
        async with self.transaction() as db:
            db.execute(DELETE_TIMER, (key,))

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]:
        async with self.reading():
            rows = (await self._retry(DUE_TIMERS, (sqlite_ts(until), limit))).fetchall()
        return [_sqlite_timer(r) for r in rows]

    async def _durably(self, sql: str, args: Sequence[Any]) -> None:
        """One statement, a transaction of its own (no BEGIN and COMMIT round), durable on
        return: the WAL's fsync, shared with every commit made before it began."""
        await self._turn()
        async with self.lock:
            await self._retry(sql, args)
        await self.wal.sync()

    # --- parties ---

    async def set_parties(self, parties: Sequence[Party]) -> None:
        """Durable on return, as a recorded effect."""
        sql = set_parties_sql(len(parties), "IS NOT")
        await self._durably(sql, _party_values(parties, sqlite_ts))

    # --- effects ---

    async def effect(self, key: str) -> Any:
        async with self.reading():
            row = (await self._retry(EFFECT, (key,))).fetchone()
        return None if row is None else _load_json(row[0])

    async def record_effect(self, key: str, value: Any, workflow_id: str | None) -> None:
        """Durable on return."""
        args = (key, workflow_id, _dump(value), sqlite_ts(datetime.now(UTC)))
        await self._durably(RECORD_EFFECT, args)


# --- rows <-> records (both databases; SQLite stores timestamps as text) -----------------

Stamp = Callable[[datetime | None], Any]


def _same(value: datetime | None) -> datetime | None:
    return value


def _insert_values(r: Record, ts: Stamp) -> tuple[Any, ...]:
    return (
        r.id,
        r.type,
        r.status,
        _dump(r.data),
        r.state.to_json(),
        _dump(r.output),
        r.error,
        r.version,
        r.attempts,
        ts(r.due_at),
        r.lease_owner,
        ts(r.lease_expires_at),
        ts(r.created_at),
        ts(r.updated_at),
    )


def _save_values(r: Record, ts: Stamp) -> tuple[bool, tuple[Any, ...]]:
    """The values of a checkpoint; True when only the checkpointed columns changed (the
    narrow `CHECKPOINT` statement), else those of the full `UPDATE`."""
    now = ts(datetime.now(UTC))
    if r.stored is not None and r.stored == r.settled_columns():
        return True, (
            _dump(r.data),
            r.state.to_json(),
            r.version + 1,
            ts(r.lease_expires_at),
            now,
            r.id,
            r.version,
        )
    return False, (
        r.status,
        _dump(r.data),
        r.state.to_json(),
        _dump(r.output),
        r.error,
        r.version + 1,
        r.attempts,
        ts(r.due_at),
        r.lease_owner,
        ts(r.lease_expires_at),
        now,
        r.id,
        r.version,
    )


def _record(row: Any, workflow_id: str, dt: Callable[[Any], datetime | None]) -> Record:
    if row is None:
        raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
    wid = row[0]
    return _stored(
        Record(
            id=wid,
            type=row[1],
            status=row[2],
            data=_data(wid, row[3]),
            state=_state(wid, row[4]),
            output=_load_json(row[5]),
            error=row[6],
            version=row[7],
            attempts=row[8],
            due_at=dt(row[9]),
            lease_owner=row[10],
            lease_expires_at=dt(row[11]),
            created_at=dt(row[12]),
            updated_at=dt(row[13]),
        )
    )


def _sqlite_save(r: Record) -> tuple[str, tuple[Any, ...]]:
    narrow, values = _save_values(r, sqlite_ts)
    return (CHECKPOINT if narrow else UPDATE), values


def _sqlite_record(row: Any, workflow_id: str) -> Record:
    return _record(row, workflow_id, _sqlite_dt)


def _pg_save(r: Record) -> tuple[str, tuple[Any, ...]]:
    narrow, values = _save_values(r, _same)
    return (P_CHECKPOINT if narrow else P_UPDATE), values


def _pg_record(row: Any, workflow_id: str) -> Record:
    return _record(row, workflow_id, _same)


def _sqlite_timer(row: Any) -> Timer:
    key, workflow_id, request, fire_at = row
    return Timer(
        key=key,
        workflow_id=workflow_id,
        request=CallbackRequest.model_validate_json(request),
        fire_at=_sqlite_dt(fire_at) or datetime.now(UTC),
    )


def _sqlite_audit(db: sqlite3.Connection, record: Record) -> None:
    if record.audit:
        now = sqlite_ts(datetime.now(UTC))
        db.executemany(AUDIT, [_audit_values(record.id, a, now) for a in record.audit])


def _audit_values(workflow_id: str, a: AuditEntry, now: Any) -> tuple[Any, ...]:
    values = {
        "workflow_id": workflow_id,
        "kind": a.kind,
        "name": a.name,
        "thread_id": a.thread_id,
        "pc": a.pc,
        "input": _dump(a.input),
        "output": _dump(a.output),
        "actor": a.actor,
        "created_at": now,
    }
    return tuple(values[c] for c in _EVENT_COLS)


def _stored(record: Record) -> Record:
    record.stored = record.settled_columns()
    return record


def _data(workflow_id: str, text: Any) -> dict[str, Any]:
    try:
        data = from_json(text)
    except ValueError as e:
        raise CorruptWorkflow(f"workflow {workflow_id!r}: data is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise CorruptWorkflow(f"workflow {workflow_id!r}: data is not a JSON object")
    return data


def _state(workflow_id: str, text: Any) -> State:
    try:
        return State.from_json(text)
    except ValidationError as e:
        raise CorruptWorkflow(f"workflow {workflow_id!r}: execution state is invalid: {e}") from e


# --- PostgreSQL ---------------------------------------------------------------------------

P_SELECT = numbered(SELECT)
P_SELECT_LOCKED = numbered(SELECT + " FOR UPDATE")
P_INSERT = numbered(INSERT)
P_UPDATE = numbered(UPDATE)
P_CHECKPOINT = numbered(CHECKPOINT)
P_MARK_FAILED = numbered(MARK_FAILED)
P_RENEW_LEASE = numbered(RENEW_LEASE)
P_DUE = numbered(DUE.format(types=PG_TYPES))
P_DUE_TIMERS = numbered(DUE_TIMERS)
P_CLAIM_WORKFLOWS = numbered(
    CLAIM_WORKFLOWS.format(claimable=CLAIMABLE_WORKFLOWS + _SKIP_LOCKED).format(types=PG_TYPES)
)
P_CLAIM_TIMERS = numbered(
    CLAIM_TIMERS.format(claimable=CLAIMABLE_TIMERS + _SKIP_LOCKED).format(types=PG_TYPES)
)
P_UNKNOWN_TYPES = numbered(UNKNOWN_TYPES.format(types=PG_TYPES))
P_ADD_TIMER = numbered(ADD_TIMER)
P_GET_TIMER = numbered(GET_TIMER)
P_DELETE_TIMER = numbered(DELETE_TIMER)
P_EFFECT = numbered(EFFECT)
P_RECORD_EFFECT = numbered(RECORD_EFFECT)


_COMMIT_LEVELS = ("on", "off", "local", "remote_write", "remote_apply")


class PostgresRows:
    """The hot statements on an asyncpg pool."""

    def __init__(self, dsn: str, *, fsync_steps: bool = False, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.fsync_steps = fsync_steps
        self.pool_size = pool_size
        self._pool: Any = None
        self._durable: Any = None

    async def start(self) -> None:
        """Two pools: one whose sessions commit asynchronously (step checkpoints, leases,
        claims) and one at the server's own level (what a person could see), so neither
        kind of commit spends a round trip on `SET LOCAL synchronous_commit`. With
        `fsync_steps`, or a server that commits asynchronously anyway, they are one.

        The sessions keep no state of their own (no LISTEN, cursors, advisory locks or
        session settings; transactions are always closed), so a connection goes back to
        its pool without asyncpg's reset query: a round trip saved on every release."""
        import asyncpg

        probe = await asyncpg.connect(self.dsn)
        try:
            level = str(await probe.fetchval("SHOW synchronous_commit"))
        finally:
            await probe.close()
        if level not in _COMMIT_LEVELS:
            raise RuntimeError(f"unknown synchronous_commit level {level!r}")
        pools = {"min_size": 1, "max_size": self.pool_size, "reset": _keep_session}
        self._durable = await asyncpg.create_pool(self.dsn, **pools)
        if self.fsync_steps or level == "off":
            self._pool = self._durable
        else:
            settings = {"synchronous_commit": "off"}
            self._pool = await asyncpg.create_pool(self.dsn, server_settings=settings, **pools)

    async def close(self) -> None:
        for pool in {id(p): p for p in (self._pool, self._durable) if p is not None}.values():
            await pool.close()
        self._pool = self._durable = None

    @property
    def pool(self) -> Any:
        """The pool whose commits do not wait for the WAL flush (unless `fsync_steps`)."""
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    @asynccontextmanager
    async def transaction(self, durable: bool | Callable[[], bool] = True) -> AsyncIterator[Any]:
        """`durable`: the commit waits as the server is configured to. A callable (what
        SQLite may flush a few milliseconds later, see `WalSync.soon`) counts as durable
        here: PostgreSQL's asynchronous commit would leave such a record to the WAL writer
        for up to three `wal_writer_delay`s (about 600 ms by default), a window too wide
        for a setup's or a teardown's record."""
        pool = self.pool if durable is False else self._durable
        async with pool.acquire() as conn, conn.transaction():
            yield conn

    async def insert(self, record: Record, committed: Callable[[], None] | None = None) -> None:
        """One statement, so one round trip in an implicit transaction: the row and its
        audit entries (a data-modifying `WITH`), at the server's durable level."""
        import asyncpg

        sql, args = _pg_audited(P_INSERT, _insert_values(record, _same), record)
        try:
            async with self._durable.acquire() as conn:
                await conn.execute(sql, *args)
        except asyncpg.UniqueViolationError as e:
            raise WorkflowExists(f"workflow {record.id!r} already exists") from e
        _stored(record)
        record.audit = []
        if committed is not None:
            committed()

    async def fetch(self, workflow_id: str) -> Record:
        async with self.pool.acquire() as conn:
            return _pg_record(await conn.fetchrow(P_SELECT, workflow_id), workflow_id)

    async def fetch_locked(self, conn: Any, workflow_id: str) -> Record:
        return _pg_record(await conn.fetchrow(P_SELECT_LOCKED, workflow_id), workflow_id)

    async def write(self, conn: Any, record: Record) -> bool:
        """Inside `transaction()`; the audit entries go in the same statement, so a False
        (the row moved on) must roll the transaction back."""
        sql, args = _pg_audited(*_pg_save(record), record)
        if await conn.execute(sql, *args) != "UPDATE 1":
            return False
        _stored(record)
        return True

    async def save(self, record: Record) -> bool:
        if record.audit:
            try:
                async with self.transaction() as conn:
                    if not await self.write(conn, record):
                        raise _Stale
            except _Stale:  # rolled back, audit entries with it
                return False
            return True
        sql, args = _pg_save(record)
        async with self.pool.acquire() as conn:  # one statement, one round trip
            saved = bool(await conn.execute(sql, *args) == "UPDATE 1")
        if saved:
            _stored(record)
        return saved

    async def mark_failed(self, workflow_id: str, error: str) -> None:
        async with self.transaction() as conn:
            await conn.execute(P_MARK_FAILED, error, datetime.now(UTC), workflow_id)

    async def renew_lease(self, workflow_id: str, owner: str, until: datetime) -> bool:
        async with self.pool.acquire() as conn:
            return bool(await conn.execute(P_RENEW_LEASE, until, workflow_id, owner) == "UPDATE 1")

    async def due(self, now: datetime, limit: int, types: Collection[str]) -> list[str]:
        async with self.pool.acquire() as conn:
            return [r[0] for r in await conn.fetch(P_DUE, list(types), now, now, limit)]

    async def claim_due(
        self, now: datetime, owner: str, until: datetime, limit: int, types: Collection[str]
    ) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(P_CLAIM_WORKFLOWS, owner, until, list(types), now, now, limit)
        return [r[0] for r in rows]

    async def count_unknown_types(
        self, now: datetime, types: Collection[str], limit: int
    ) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(P_UNKNOWN_TYPES, now, now, list(types), limit)
        return {r[0]: r[1] for r in rows}

    async def claim_timers(
        self,
        until: datetime,
        owner: str,
        lease_until: datetime,
        now: datetime,
        limit: int,
        types: Collection[str],
    ) -> list[Timer]:
        args = (owner, lease_until, until, now, list(types), limit)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(P_CLAIM_TIMERS, *args)
        return [_pg_timer(r) for r in rows]

    async def add_timer(self, timer: Timer) -> Timer:
        async with self.transaction() as conn:
            await conn.execute(
                P_ADD_TIMER,
                timer.key,
                timer.workflow_id,
                timer.request.model_dump_json(),
                timer.fire_at,
            )
            return _pg_timer(await conn.fetchrow(P_GET_TIMER, timer.key))

    async def delete_timer(self, key: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(P_DELETE_TIMER, key)

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]:
        async with self.pool.acquire() as conn:
            return [_pg_timer(r) for r in await conn.fetch(P_DUE_TIMERS, until, limit)]

    async def set_parties(self, parties: Sequence[Party]) -> None:
        sql = numbered(set_parties_sql(len(parties), "IS DISTINCT FROM"))
        async with self._durable.acquire() as conn:
            await conn.execute(sql, *_party_values(parties, _same))

    async def effect(self, key: str) -> Any:
        async with self.pool.acquire() as conn:
            return _load_json(await conn.fetchval(P_EFFECT, key))

    async def record_effect(self, key: str, value: Any, workflow_id: str | None) -> None:
        """One statement at the server's durable level."""
        async with self._durable.acquire() as conn:
            await conn.execute(P_RECORD_EFFECT, key, workflow_id, _dump(value), datetime.now(UTC))


async def _keep_session(conn: Any) -> None:
    """A released connection needs no reset: see `PostgresRows.start`."""


def _pg_timer(row: Any) -> Timer:
    return Timer(
        key=row[0],
        workflow_id=row[1],
        request=CallbackRequest.model_validate_json(row[2]),
        fire_at=row[3],
    )


class _Stale(Exception):
    """A checkpoint's version was not the row's: roll its transaction back."""


def _pg_audited(sql: str, values: tuple[Any, ...], record: Record) -> tuple[str, tuple[Any, ...]]:
    """`sql` preceded by the insertion of the record's audit entries, in one statement."""
    if not record.audit:
        return sql, values
    now = datetime.now(UTC)
    entries = [v for a in record.audit for v in _audit_values(record.id, a, now)]
    return _with_audit(sql, len(record.audit)), (*entries, *values)


@functools.cache
def _with_audit(sql: str, entries: int) -> str:
    """`sql` ($-numbered) after a `WITH` inserting `entries` audit rows, whose
    placeholders come first: $1 … $k, then `sql`'s own, shifted by k."""
    width = len(_EVENT_COLS)
    rows = ", ".join(
        "(" + ", ".join(f"${e * width + c + 1}" for c in range(width)) + ")" for e in range(entries)
    )
    shift = entries * width
    shifted = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + shift}", sql)
    audit = f"INSERT INTO workflow_events ({', '.join(_EVENT_COLS)}) VALUES {rows}"
    return f"WITH audit AS ({audit}) {shifted}"
