"""The interpreter: gorchestrate's `Resume` and `HandleCallback` on one workflow's data and
execution state, with nothing stored.

It knows threads, positions and wait events, and nothing of records, leases, databases or
the outside world: `Interpreter.resume` runs threads until every one blocks or the workflow
ends, calling `checkpoint` after each step; `Interpreter.handle_callback` applies an event to
the wait it answers. The engine drives the same functions one step at a time and adds
durability around them (checkpoints to the store, leases, retries, setups and teardowns).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workflows import statements as st
from workflows.errors import DefinitionError, NoManager, StaleCallback, StatementNotFound
from workflows.state import (
    MAIN_THREAD,
    OPEN,
    RUNNABLE,
    EventStatus,
    State,
    Thread,
    ThreadStatus,
    WaitEvent,
)
from workflows.types import CallbackRequest
from workflows.workflow import Workflow

# The statuses every step checks or sets, bound once: looking a member up on its enum class
# costs more than the comparison itself on CPython 3.11.
_GOTO, _RUNNING, _WAITING_FOR = ThreadStatus.GOTO, ThreadStatus.RUNNING, ThreadStatus.WAITING_FOR


@dataclass(frozen=True, slots=True)
class Ended:
    """The main thread ended, and with it the workflow: with `output`, or failed with
    `error` (it returned an exception)."""

    output: Any = None
    error: str | None = None


def thread_root(wf: Workflow, thread: Thread) -> st.Stmt:
    """The statement a thread runs, built from the workflow's current data."""
    root = wf.definition()
    if not thread.go:
        return root
    go = st.find(root, thread.go)
    if not isinstance(go, st.Go):
        raise StatementNotFound(
            f"Go statement {thread.go!r} of thread {thread.id!r} no longer exists"
        )
    return go.body(thread.id)


def _walk_tree(root: st.Stmt, cursor: st.Cursor) -> st.Outcome:
    """Walk a built tree. Statements do not check what they are given (they are built on
    every walk), so a walk that trips over something else has `check` name it."""
    try:
        return root.walk(cursor)
    except AttributeError:
        st.check(root)
        raise


def thread_events(wf: Workflow, thread: Thread) -> dict[str, st.On]:
    return st.events(thread_root(wf, thread))


def event_of(wf: Workflow, thread: Thread, name: str) -> st.On:
    """The `On` named `name` of the Wait the thread is blocked in, as built from the
    current data: a walk to the Wait finds it, as a goto would. If new code renamed or
    moved that Wait, the event is still found by its own name."""
    root = thread_root(wf, thread)
    blocked = _walk_tree(root, st.Cursor(thread.step, True))
    if type(blocked) is st.Blocked and blocked.name == thread.step:
        for on in blocked.events:
            if on.name == name:
                return on
    renamed = st.events(root).get(name)
    if renamed is None:
        raise StatementNotFound(
            f"event {name!r} no longer exists in {type(wf).workflow_type}'s definition"
        )
    return renamed


def walk(wf: Workflow, thread: Thread) -> st.Outcome:
    """Where the thread goes next from its position: a step to run, a wait, its end."""
    cursor = st.Cursor(thread.step or None, thread.status == _GOTO)
    outcome = _walk_tree(thread_root(wf, thread), cursor)
    if cursor.target is not None:
        raise StatementNotFound(
            f"statement {thread.step!r} (thread {thread.id!r}) no longer exists in "
            f"{type(wf).workflow_type}'s definition"
        )
    return outcome


def next_thread(state: State, recheck: bool, now: datetime | None = None) -> Thread | None:
    """The first thread that can run (at `now`, if given: not one whose step was put off
    past it). With `recheck` (data changed), threads in a WaitFor walk to it again to see
    whether its condition holds now."""
    if recheck:
        for t in state.threads:
            if t.status == _WAITING_FOR:
                t.status = _GOTO
    for t in state.threads:
        if t.status in RUNNABLE and (now is None or t.due_at is None or t.due_at <= now):
            return t
    return None


def open_wait(state: State, request: CallbackRequest) -> tuple[Thread, WaitEvent]:
    """The thread and event `request` answers, if that wait is still open."""
    thread = state.thread(request.thread_id)
    if thread is not None and thread.status == ThreadStatus.BLOCKED:
        for event in thread.events:
            if event.name == request.name and event.pc == request.pc and event.status in OPEN:
                return thread, event
    raise StaleCallback(
        f"callback {request.name!r} (pc {request.pc}) of workflow {request.workflow_id} is "
        "stale: that wait is over"
    )


def _now() -> datetime:
    return datetime.now(UTC)


class Interpreter:
    """Applies walks and callbacks to the execution state.

    `event_types` are the handler types that have a callback manager: a thread may only
    block on events the engine can set up. `clock` stamps when each wait began."""

    def __init__(self, event_types: Container[str], clock: Callable[[], datetime] = _now) -> None:
        self.event_types = event_types
        self.clock = clock

    def apply(self, state: State, thread: Thread, outcome: st.Outcome) -> bool | Ended:
        """Record what a walk (and the step it ran) did. Returns `Ended` when the workflow
        ended, else whether data may have changed (so WaitFor conditions are due a recheck).
        """
        if type(outcome) is st.Ran:  # by far the most common: checked first
            thread.step, thread.status = outcome.name, _RUNNING
            return True
        match outcome:
            case st.Blocked(name, events):
                for on in events:
                    if on.handler.type not in self.event_types:
                        raise NoManager(
                            f"event {on.name!r}: no callback manager for {on.handler.type!r}"
                        )
                state.pc += 1
                state.orphan(thread)  # teardowns still owed by its previous wait
                thread.step, thread.status = name, ThreadStatus.BLOCKED
                since = self.clock()
                # Saved with setup_started=1: the setup that follows is attempt 1 without a
                # write of its own; any later one is attempt 2 or more.
                thread.events = [
                    WaitEvent(
                        name=on.name,
                        type=on.handler.type,
                        pc=state.pc,
                        since=since,
                        setup_started=1,
                    )
                    for on in events
                ]
                return False
            case st.BlockedFor(name):
                was = (thread.step, thread.status)
                thread.step, thread.status = name, ThreadStatus.WAITING_FOR
                return was != (name, ThreadStatus.GOTO)
            case st.Spawned(name, thread_id):
                if state.thread(thread_id) is not None:
                    raise DefinitionError(f"Go {name!r}: thread {thread_id!r} is already running")
                thread.step, thread.status = name, ThreadStatus.RUNNING
                state.threads.append(Thread(id=thread_id, go=name))
                return True
            case st.Returned(value) if thread.id == MAIN_THREAD:
                state.orphan_all()
                if isinstance(value, BaseException):
                    return Ended(error=str(value) or type(value).__name__)
                return Ended(output=value)
            case None if thread.id == MAIN_THREAD:
                state.orphan_all()
                return Ended()
            case st.Returned() | None:
                state.orphan(thread)
                state.threads.remove(thread)
                return True
        raise DefinitionError(f"{outcome!r} outside of a loop in thread {thread.id!r}")

    async def step(
        self,
        wf: Workflow,
        state: State,
        thread: Thread,
        before_run: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[st.Outcome, bool | Ended]:
        """Walk the thread, run the step it reached, and record it. `before_run` is
        awaited first when the walk reached code to run (not a wait or an end)."""
        outcome = walk(wf, thread)
        if type(outcome) is st.Ran and outcome.fn is not None:
            if before_run is not None:
                await before_run()
            result = outcome.fn()
            if result is not None and inspect.isawaitable(result):
                await result  # an async step
        return outcome, self.apply(state, thread, outcome)

    async def resume(
        self, wf: Workflow, state: State, checkpoint: Callable[[], Awaitable[None]]
    ) -> Ended | None:
        """Run until every thread blocks (None) or the workflow ends, checkpointing after
        every step. A step that raises propagates: its effects were not checkpointed."""
        recheck = True
        while (thread := next_thread(state, recheck)) is not None:
            recheck = False
            outcome, change = await self.step(wf, state, thread)
            if change is False and type(outcome) is st.BlockedFor:
                continue  # a WaitFor checked again still does not hold: nothing to save
            await checkpoint()
            if type(change) is Ended:
                return change
            recheck = change is not False
        return None

    async def handle_callback(
        self, wf: Workflow, state: State, request: CallbackRequest, input: Any
    ) -> Any:
        """Apply an event to the wait it answers: run its handler, end the wait (its events
        are due a teardown) and let the thread run on into the event's statements. A
        request for a wait that is over raises `StaleCallback` and changes nothing."""
        thread, event = open_wait(state, request)
        output = await event_of(wf, thread, request.name).handler.handle(request, input)
        for e in thread.events:
            e.status = EventStatus.PENDING_TEARDOWN
            e.retry_at = None
        event.handled = True
        thread.status = ThreadStatus.RUNNING
        thread.step = request.name
        state.pc += 1
        return output
