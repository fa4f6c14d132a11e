"""Execution state: where each thread is, what it waits for. Stored as JSON beside the data.

A thread's position is a statement *name*, never an index into the tree, so code can change
under a running workflow: statements that are not in flight may be added, edited or moved.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

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


class WaitEvent(BaseModel):
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


class Thread(BaseModel):
    id: str
    go: str = ""  # name of the Go statement that started it; empty for the main thread
    step: str = ""
    status: ThreadStatus = ThreadStatus.RUNNING
    events: list[WaitEvent] = Field(default_factory=list)


class State(BaseModel):
    """All threads of one workflow and its program counter (bumped whenever a wait begins
    or is answered, so every wait has a distinct `pc`)."""

    pc: int = 0
    threads: list[Thread] = Field(default_factory=lambda: [Thread(id=MAIN_THREAD)])
    # Teardowns owed by threads that no longer exist (ended with their workflow or thread).
    orphans: list[OrphanEvent] = Field(default_factory=list)

    def thread(self, thread_id: str) -> Thread | None:
        for t in self.threads:
            if t.id == thread_id:
                return t
        return None

    def orphan(self, thread: Thread) -> None:
        """Take the thread's wait events off it; their teardowns are still owed."""
        for event in thread.events:
            if event.status not in TEARDOWN:
                event.status = EventStatus.PENDING_TEARDOWN
                event.retry_at = None
            self.orphans.append(OrphanEvent(thread_id=thread.id, event=event))
        thread.events = []

    def orphan_all(self) -> None:
        for thread in self.threads:
            self.orphan(thread)


class OrphanEvent(BaseModel):
    thread_id: str
    event: WaitEvent


State.model_rebuild()
