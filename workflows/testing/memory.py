"""An in-memory `DB`: the same contract as the SQL store, nothing persisted.

For fast unit tests of workflow definitions and for measuring the engine alone. Records are
copied in and out, so a caller never shares state with the store, as with a real database.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic_core import from_json, to_json

from workflows.errors import WorkflowExists, WorkflowNotFound
from workflows.state import State, Status
from workflows.types import AuditEntry, Party, Record, Timer

T = TypeVar("T")


def _copy(record: Record) -> Record:
    """A copy sharing nothing mutable, made through JSON as a database would."""
    copied = copy.copy(record)
    copied.data = from_json(to_json(record.data))
    copied.state = State.from_data(record.state.to_data())
    copied.output = from_json(to_json(record.output))
    copied.audit = list(record.audit)
    return copied


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        # The records with a due time: what `due` looks at (as the SQL store's index does).
        self._scheduled: dict[str, Record] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._timers: dict[str, Timer] = {}
        self._timer_leases: dict[str, tuple[str, datetime]] = {}
        self._effects: dict[str, Any] = {}
        self._parties: dict[tuple[str, str, str, str], Party] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    def _keep(self, record: Record) -> None:
        self._history.setdefault(record.id, []).extend(_entry(record.id, a) for a in record.audit)
        record.audit = []
        kept = self._records[record.id] = _copy(record)
        if kept.due_at is None:
            self._scheduled.pop(kept.id, None)
        else:
            self._scheduled[kept.id] = kept

    async def create(self, record: Record, committed: Callable[[], None] | None = None) -> None:
        if record.id in self._records:
            raise WorkflowExists(f"workflow {record.id!r} already exists")
        self._keep(record)
        if committed is not None:
            committed()

    async def get(self, workflow_id: str) -> Record:
        try:
            return _copy(self._records[workflow_id])
        except KeyError:
            raise WorkflowNotFound(f"no workflow with id {workflow_id!r}") from None

    async def update(self, workflow_id: str, fn: Callable[[Record], Awaitable[T]]) -> T:
        async with self._lock:
            record = await self.get(workflow_id)
            result = await fn(record)
            record.version += 1
            self._keep(record)
            return result

    async def save(self, record: Record) -> bool:
        current = self._records.get(record.id)
        if current is None or current.version != record.version:
            return False
        record.version += 1
        self._keep(record)
        return True

    async def renew_lease(self, workflow_id: str, owner: str, until: datetime) -> bool:
        record = self._records.get(workflow_id)
        if record is None or record.lease_owner != owner:
            return False
        record.lease_expires_at = until
        return True

    async def mark_failed(self, workflow_id: str, error: str) -> None:
        record = self._records[workflow_id]
        record.status, record.error, record.lease_owner = "failed", error, None
        record.due_at = None
        self._scheduled.pop(workflow_id, None)

    def _due(self, now: datetime) -> list[Record]:
        return [
            r
            for r in self._scheduled.values()
            if r.due_at is not None
            and r.due_at <= now
            and (r.lease_expires_at is None or r.lease_expires_at < now)
        ]

    async def due(self, now: datetime, limit: int, types: Collection[str]) -> list[str]:
        due = [r for r in self._due(now) if r.type in types]
        return [r.id for r in sorted(due, key=lambda r: r.due_at or now)[:limit]]

    async def count_unknown_types(
        self, now: datetime, types: Collection[str], limit: int = 10_000
    ) -> dict[str, int]:
        unknown = [r for r in self._due(now) if r.type not in types]
        counts: dict[str, int] = {}
        for record in sorted(unknown, key=lambda r: r.due_at or now)[:limit]:
            counts[record.type] = counts.get(record.type, 0) + 1
        return counts

    async def list_workflows(
        self,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        type: str | None = None,
        created_before: datetime | None = None,
    ) -> list[Record]:
        records = [
            _copy(r)
            for r in self._records.values()
            if (status is None or r.status == status)
            and (type is None or r.type == type)
            and (
                created_before is None
                or (r.created_at is not None and r.created_at < created_before)
            )
        ]
        records.sort(key=lambda r: r.created_at or datetime.min, reverse=newest_first)
        return records[:limit]

    async def claim_due(
        self, now: datetime, owner: str, until: datetime, limit: int, types: Collection[str]
    ) -> list[str]:
        ids = await self.due(now, limit, types)
        for workflow_id in ids:
            record = self._records[workflow_id]
            record.lease_owner, record.lease_expires_at = owner, until
            record.version += 1
        return ids

    async def claim_timers(
        self,
        until: datetime,
        owner: str,
        lease_until: datetime,
        now: datetime,
        limit: int,
        types: Collection[str],
    ) -> list[Timer]:
        due = [
            t
            for t in await self.due_timers(until, len(self._timers))
            if self._timer_leases.get(t.key, (None, now))[1] <= now and self._runs(t, types)
        ][:limit]
        for timer in due:
            self._timer_leases[timer.key] = (owner, lease_until)
        return due

    def _runs(self, timer: Timer, types: Collection[str]) -> bool:
        """Whether a process running `types` claims the timer (its workflow is of one of
        them, or gone: firing drops it), as the SQL store's claim says."""
        record = self._records.get(timer.workflow_id)
        return record is None or record.type in types

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._records.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    async def oldest_due(self, now: datetime) -> datetime | None:
        due = [r.due_at for r in self._records.values() if r.due_at and r.due_at <= now]
        return min(due) if due else None

    async def history(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        if workflow_id is None:
            return [e for entries in self._history.values() for e in entries]
        return list(self._history.get(workflow_id, []))

    async def effect(self, key: str) -> Any:
        return copy.deepcopy(self._effects.get(key))

    async def record_effect(self, key: str, value: Any, workflow_id: str | None = None) -> None:
        if value is None:
            raise ValueError("an effect records a value (None means nothing was recorded)")
        self._effects[key] = copy.deepcopy(value)

    async def set_parties(self, parties: Sequence[Party]) -> None:
        now = datetime.now(UTC)
        for party in parties:
            key = (party.person, party.workflow_id, party.role, party.part)
            kept = self._parties.get(key)
            new = copy.copy(party)
            new.stand, new.title = party.stand[:400], party.title[:400]
            same = ("stand", "open", "title", "since")
            if kept is not None and all(getattr(kept, a) == getattr(new, a) for a in same):
                continue
            new.updated_at = party.updated_at or now
            self._parties[key] = new

    def _of(self, person: str, open: bool, role: str | None) -> list[Party]:
        found = [
            p
            for p in self._parties.values()
            if p.person == person and p.open == open and role in (None, p.role)
        ]
        if not open:
            return sorted(found, key=lambda p: p.updated_at or _EPOCH, reverse=True)
        live = (Status.RUNNING, Status.WAITING)
        found = [
            p
            for p in found
            if (r := self._records.get(p.workflow_id)) is not None and r.status in live
        ]
        return sorted(found, key=lambda p: (p.since or _EPOCH, p.workflow_id))

    async def parties(
        self,
        person: str,
        *,
        open: bool,
        role: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Party]:
        return [copy.copy(p) for p in self._of(person, open, role)[offset : offset + limit]]

    async def count_parties(self, person: str, *, open: bool, role: str | None = None) -> int:
        return len(self._of(person, open, role))

    async def add_timer(self, timer: Timer) -> Timer:
        return self._timers.setdefault(timer.key, timer)

    async def delete_timer(self, key: str) -> None:
        self._timers.pop(key, None)
        self._timer_leases.pop(key, None)

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]:
        due = sorted(
            (t for t in self._timers.values() if t.fire_at <= until), key=lambda t: t.fire_at
        )
        return due[:limit]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _entry(workflow_id: str, a: AuditEntry) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "kind": a.kind,
        "name": a.name,
        "thread_id": a.thread_id,
        "pc": a.pc,
        "input": a.input,
        "output": a.output,
        "actor": a.actor,
    }
