"""The interfaces users plug in: handlers, callback managers, storage, resumers, clocks.

They are `typing.Protocol`s, so any object with the right methods fits; nothing needs to
inherit from the engine's classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from workflows.engine import Engine
    from workflows.state import State

T = TypeVar("T")


class CallbackRequest(BaseModel):
    """Identifies one wait event of one thread at one moment (its program counter).

    It is what the outside world hands back to `Engine.on_callback`: it travels in Slack
    button values and timer rows, so it is plain JSON. `pc` makes a repeat or a late answer
    detectable: once the wait is over, no request carrying its `pc` is accepted again.
    """

    workflow_id: str
    thread_id: str
    name: str
    pc: int
    setup_data: str = ""
    waiting_since: datetime | None = None
    setup_attempt: int = 0
    """Which setup attempt this is (1 = first). From 2 on, an earlier attempt may have
    created the wait in the outside world before a crash: setup should look for it."""


@runtime_checkable
class Handler(Protocol):
    """One wait condition inside `On(event, handler, ...)`.

    `type` names the `CallbackManager` that creates the wait in the outside world;
    `handle` applies the event to the workflow data (usually through closures over the
    workflow) and returns the output given back to the caller of `on_callback`. Raising
    `CallbackRejected` refuses the event and leaves the workflow unchanged.
    """

    type: ClassVar[str]

    async def handle(self, request: CallbackRequest, input: Any) -> Any: ...


class CallbackManager(Protocol):
    """Creates and removes a wait in the outside world. Both calls must be idempotent:
    after a crash they run again with the same request. `teardown` may get an empty
    `setup_data` with `setup_attempt > 0`: a setup began but its result was never recorded,
    so whatever it created must be found (by keys derived from the request) and removed."""

    async def setup(self, request: CallbackRequest, handler: Any) -> str: ...

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None: ...


class Clock(Protocol):
    """Where the engine reads the time (UTC, timezone-aware)."""

    def now(self) -> datetime: ...


@dataclass
class AuditEntry:
    """One line of a workflow's history, written in the same transaction as the change."""

    kind: str
    name: str = ""
    thread_id: str = ""
    pc: int = 0
    input: Any = None
    output: Any = None
    actor: str = ""


@dataclass
class Record:
    """A stored workflow: one row, data and execution state as JSON."""

    id: str
    type: str
    status: str
    data: dict[str, Any]
    state: State
    version: int = 0
    output: Any = None
    error: str | None = None
    attempts: int = 0
    due_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Written with the next save, in the same transaction.
    audit: list[AuditEntry] = field(default_factory=list)
    # Whether the `DB.update` writing this record returns only once the write is on disk.
    # The engine clears it for a setup's or a teardown's record after which nothing of
    # the workflow runs until something from outside commits durably (a callback, a
    # timer firing, an operator change): that commit comes later in the database's log,
    # so it covers this one, and nobody relies on this one before. The store may then
    # flush it with the next durable commit, or shortly after; one that ignores it
    # flushes as usual.
    flush_now: bool = field(default=True, repr=False, compare=False)
    # The store's note of the columns as last read or written (see `settled_columns`).
    stored: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    def settled_columns(self) -> tuple[Any, ...]:
        """The columns a step checkpoint rarely changes (several are indexed)."""
        return (
            self.status,
            self.output,
            self.error,
            self.attempts,
            self.due_at,
            self.lease_owner,
        )


@dataclass
class Party:
    """A person's part in a workflow, as its steps state it (`DB.set_parties`): kept in a
    table indexed by person, so "what waits on me" is a lookup, not a scan of every
    workflow's JSON.

    `role` and `part` are the workflow's words (`approver`, `requester`; which approval);
    `stand` is where the person stands, as they would read it; `open` whether the part is
    still live (for an approver: the request waits on them), so lists of open parts come
    oldest `since` first, and of closed ones latest `updated_at` first."""

    person: str
    workflow_id: str
    role: str
    part: str = ""
    stand: str = ""
    open: bool = True
    title: str = ""
    since: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Timer:
    """A callback the engine fires by itself at `fire_at` (durably stored)."""

    key: str
    workflow_id: str
    request: CallbackRequest
    fire_at: datetime


class DB(Protocol):
    """Durable storage of workflow records, their history and timers.

    `update` is the exclusive lock: `fn` runs while no other process can change the record,
    and its changes are saved (version + 1) when it returns; if it raises, nothing is saved.
    `save` is the optimistic checkpoint: it writes only if the version is still the one read.
    Optional: `renew_lease(workflow_id, owner, until) -> bool` keeps a long execution's
    lease without a new version (the engine calls it when present), and
    `mark_failed(workflow_id, error)` fails a row whose data no longer parses.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, record: Record, committed: Callable[[], None] | None = None) -> None:
        """Store a new record; durable when this returns. `committed`, if given, is called
        once the record is committed, perhaps before it is on disk, so that its execution
        can start while the disk works (the caller still hears of success only after)."""
        ...

    async def get(self, workflow_id: str) -> Record: ...

    async def update(self, workflow_id: str, fn: Callable[[Record], Awaitable[T]]) -> T: ...

    async def save(self, record: Record) -> bool: ...

    async def due(self, now: datetime, limit: int, types: Collection[str]) -> list[str]: ...

    async def history(self, workflow_id: str | None = None) -> list[dict[str, Any]]: ...

    async def list_workflows(
        self,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        type: str | None = None,
        created_before: datetime | None = None,
    ) -> list[Record]: ...

    async def claim_due(
        self, now: datetime, owner: str, until: datetime, limit: int, types: Collection[str]
    ) -> list[str]:
        """Lease due workflows to `owner`: only those of `types`, the ones it can run, so a
        workflow of a type it does not know waits for a process that does."""
        ...

    async def claim_timers(
        self,
        until: datetime,
        owner: str,
        lease_until: datetime,
        now: datetime,
        limit: int,
        types: Collection[str],
    ) -> list[Timer]:
        """Lease due timers to `owner`, except those of workflows not of `types`."""
        ...

    async def count_unknown_types(
        self, now: datetime, types: Collection[str], limit: int = 10_000
    ) -> dict[str, int]:
        """Due workflows that no live process holds whose type is not in `types`, by type
        (the oldest `limit` of them): what a process running only `types` leaves waiting
        (during a rolling deploy, or because no process knows the type any more)."""
        ...

    async def add_timer(self, timer: Timer) -> Timer: ...

    async def delete_timer(self, key: str) -> None: ...

    async def due_timers(self, until: datetime, limit: int) -> list[Timer]: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def effect(self, key: str) -> Any:
        """What was recorded under `key` (None: nothing). Effects are what steps and wait
        managers did outside a workflow ("began posting the outcome", "posted it as ts
        …", "alice's DM is D…"), so that one that runs again after a crash can tell
        whether it already acted, and every process shares what one learned."""
        ...

    async def record_effect(self, key: str, value: Any, workflow_id: str | None = None) -> None:
        """Record `value` (JSON, not None) under `key`, durably, replacing what was there."""
        ...

    async def set_parties(self, parties: Sequence[Party]) -> None:
        """Store each party (by person, workflow, role and part), replacing what was there:
        idempotent, so a step that runs again writes the same. A party whose `stand`,
        `open` and `title` are unchanged keeps its `updated_at`."""
        ...

    async def parties(
        self,
        person: str,
        *,
        open: bool,
        role: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Party]:
        """`person`'s open parts (of workflows still running, oldest `since` first) or
        closed ones (latest `updated_at` first), of `role` if given."""
        ...

    async def count_parties(self, person: str, *, open: bool, role: str | None = None) -> int:
        """How many `parties` there are in all (for a pager)."""
        ...

    async def oldest_due(self, now: datetime) -> datetime | None: ...

    async def ping(self) -> None: ...


class Resumer(Protocol):
    """Makes sure every workflow that needs execution gets it, and timers fire."""

    def attach(self, engine: Engine) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def wake(self, workflow_id: str, at: datetime | None = None) -> None: ...

    def timer_added(self, timer: Timer) -> None: ...


StepFn = Callable[[], Any]
"""A step's code: a function of no arguments (closing over the workflow), sync or async."""
