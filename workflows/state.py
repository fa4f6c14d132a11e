"""Execution state: where each thread is, what it waits for. Stored as JSON beside the data.

A thread's position is a statement *name*, never an index into the tree, so code can change
under a running workflow: statements that are not in flight may be added, edited or moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

MAIN_THREAD = "main"


class Status(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELLED})


class ThreadStatus(StrEnum):
    RUNNING = "running"  # continue after `step` (or from the start when `step` is empty)
    GOTO = "goto"  # run the statement named `step` itself (operator repair, re-arming a wait)
    BLOCKED = "blocked"  # in the Wait named `step`, until one of its events happens
    WAITING_FOR = "waiting_for"  # in the WaitFor named `step`, until its condition holds


class EventStatus(StrEnum):
    PENDING_SETUP = "pending_setup"
    SETUP = "setup"
    PENDING_TEARDOWN = "pending_teardown"
    SETUP_ERROR = "setup_error"
    TEARDOWN_ERROR = "teardown_error"


RUNNABLE = (ThreadStatus.RUNNING, ThreadStatus.GOTO)
OPEN = (EventStatus.PENDING_SETUP, EventStatus.SETUP, EventStatus.SETUP_ERROR)  # answerable
TEARDOWN = (EventStatus.PENDING_TEARDOWN, EventStatus.TEARDOWN_ERROR)


@dataclass(slots=True)
class WaitEvent:
    """One `On` of a Wait a thread is blocked in, with its life in the outside world."""

    name: str
    type: str
    pc: int
    status: EventStatus = EventStatus.PENDING_SETUP
    since: datetime | None = None
    setup_data: str = ""
    handled: bool = False
    error: str = ""
    attempts: int = 0
    retry_at: datetime | None = None
    setup_started: int = 0  # setups begun; more than one means one may have had effects


@dataclass(slots=True)
class Thread:
    id: str
    go: str = ""  # name of the Go statement that started it; empty for the main thread
    step: str = ""
    status: ThreadStatus = ThreadStatus.RUNNING
    events: list[WaitEvent] = field(default_factory=list)
    due_at: datetime | None = None
    """Its next step was put off until then (`RetryLater`: a rate budget, say); the
    other threads run on meanwhile."""


@dataclass(slots=True)
class OrphanEvent:
    thread_id: str
    event: WaitEvent
    go: str = ""
    """The Go statement that started its thread: the thread may have ended, and its
    teardown still needs the event's handler, built from that statement."""


def _main_only() -> list[Thread]:
    return [Thread(MAIN_THREAD)]


@dataclass(slots=True)
class State:
    """All threads of one workflow and its program counter (bumped whenever a wait begins
    or is answered, so every wait has a distinct `pc`).

    Plain dataclasses, validated and serialized by pydantic only at the store's edge: the
    interpreter changes them at every step, and a pydantic model's attribute writes and
    construction cost several times as much."""

    pc: int = 0
    threads: list[Thread] = field(default_factory=_main_only)
    # Teardowns owed by threads that no longer exist (ended with their workflow or thread).
    orphans: list[OrphanEvent] = field(default_factory=list)

    def thread(self, thread_id: str) -> Thread | None:
        for t in self.threads:
            if t.id == thread_id:
                return t
        return None

    def orphan(self, thread: Thread) -> None:
        """Take the thread's wait events off it; their teardowns are still owed."""
        if not thread.events:
            return
        for event in thread.events:
            if event.status not in TEARDOWN:
                event.status = EventStatus.PENDING_TEARDOWN
                event.retry_at = None
            self.orphans.append(OrphanEvent(thread.id, event, thread.go))
        thread.events = []

    def orphan_all(self) -> None:
        for thread in self.threads:
            self.orphan(thread)

    def to_data(self) -> dict[str, Any]:
        """The state as JSON-ready data (what the store keeps)."""
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return data

    def to_json(self) -> str:
        # The core serializer directly: TypeAdapter's wrapper costs as much again.
        return _ADAPTER.serializer.to_json(self).decode()

    @staticmethod
    def from_data(data: Any) -> State:
        """Validate stored data; raises pydantic's `ValidationError` if it is not a state."""
        return _ADAPTER.validate_python(data)

    @staticmethod
    def from_json(text: str | bytes) -> State:
        state: State = _ADAPTER.validator.validate_json(text)
        return state


_ADAPTER = TypeAdapter(State)
