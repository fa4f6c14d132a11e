"""The engine: runs workflow threads step by step, checkpointing after each one.

How execution resumes (the gorchestrate model):
- Every thread stores the *name* of its position. To continue, the engine rebuilds the
  definition from the current data and walks it, skipping to that name (see statements.py).
- One step runs per walk; its effect on the data is checkpointed before anything else
  happens (another step, a setup, a teardown), then the definition is rebuilt; when the
  walk after it only blocks the thread or ends it, that is recorded in the same write. A
  crash between a step and its checkpoint runs the step again: steps run at least once.
- A thread that reaches a `Wait` blocks; each `On` becomes a wait event that goes through
  `pending_setup -> setup -> pending_teardown`. Setup and teardown talk to the outside world
  (post a message, store a timer), so they happen outside any lock and are recorded after.
- `on_callback` applies an event under the row lock after checking that the wait is still the
  one the request was made for (thread, event name, program counter): callbacks apply exactly
  once; a late or repeated one raises `StaleCallback` and changes nothing.
- Only one process executes a workflow at a time: `execute` takes a lease on the row (owner
  and expiry). A process that dies leaves a lease that expires, and the resumer's sweep hands
  the workflow to another process.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from workflows import statements as st
from workflows.cancellation import EVENT_TYPE as CANCELLED_EVENT
from workflows.cancellation import OnCancel, owe_on_cancel
from workflows.errors import (
    CallbackError,
    CorruptWorkflow,
    DefinitionError,
    NoManager,
    RetryLater,
    StatementNotFound,
    StepFailed,
    UnknownWorkflowType,
    WorkflowError,
    WorkflowFinished,
)
from workflows.interpreter import (
    Ended,
    Interpreter,
    event_of,
    next_thread,
    open_wait,
    thread_events,
    thread_root,
)
from workflows.observer import NullObserver, Observer, current_workflow
from workflows.state import (
    MAIN_THREAD,
    OPEN,
    RUNNABLE,
    TEARDOWN,
    TERMINAL,
    EventStatus,
    State,
    Status,
    Thread,
    ThreadStatus,
    WaitEvent,
)
from workflows.store import SQLStore
from workflows.types import (
    DB,
    AuditEntry,
    CallbackManager,
    CallbackRequest,
    Clock,
    Record,
    Resumer,
    Timer,
)
from workflows.workflow import Workflow

log = logging.getLogger("workflows.engine")

DEFAULT_DATABASE_URL = "sqlite:///workflows.db"
_MAX_BORN = 10_000


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class WorkflowInfo:
    """What `Engine.get` returns: the record with the data as the workflow model."""

    id: str
    type: str
    status: str
    data: Workflow
    state: State
    output: Any
    error: str | None
    attempts: int
    version: int
    due_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


def _json(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


class Engine:
    """Runs workflows durably. See the module docstring for the execution model."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        workflows: Sequence[type[Workflow]],
        callbacks: Mapping[str, CallbackManager] | None = None,
        resumer: Resumer | None = None,
        db: DB | None = None,
        clock: Clock | None = None,
        services: Sequence[object] = (),
        observer: Observer | None = None,
        max_attempts: int = 10,
        retry_base: timedelta = timedelta(seconds=1),
        retry_max: timedelta = timedelta(minutes=5),
        lease: timedelta = timedelta(seconds=60),
        steps_per_run: int = 1000,
        worker_id: str | None = None,
    ) -> None:
        self.db: DB = db or SQLStore(database_url or DEFAULT_DATABASE_URL)
        self.workflows: dict[str, type[Workflow]] = {}
        for cls in workflows:
            if cls.workflow_type in self.workflows:
                raise DefinitionError(f"two workflow classes named {cls.workflow_type!r}")
            self.workflows[cls.workflow_type] = cls
        self.callbacks: dict[str, CallbackManager] = dict(callbacks or {})
        self.callbacks[CANCELLED_EVENT] = OnCancel(self)
        self.resumer = resumer
        self.clock: Clock = clock or SystemClock()
        self.interpreter = Interpreter(self.callbacks, self.clock.now)
        self.services: dict[type, object] = {type(s): s for s in services}
        self.observer: Observer = observer or NullObserver()
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.lease = lease
        self.steps_per_run = steps_per_run
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._locks: dict[str, asyncio.Lock] = {}
        self._stopping = False
        # Wait events created by executions in progress here, not yet set up.
        self._fresh: set[tuple[str, str, str, int]] = set()
        # Workflows created or answered here, leased to this process by that write, not
        # yet executed: the execution starts from the record as written instead of
        # reading it back (a change made since shows as a new version at its first write,
        # which reloads).
        self._born: dict[str, Record] = {}
        # Managers and services that need the engine (its clock, database or waits) have
        # an `attach(engine)`.
        for part in [*self.callbacks.values(), *self.services.values()]:
            attach = getattr(part, "attach", None)
            if callable(attach):
                attach(self)
        if resumer is not None:
            resumer.attach(self)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the tables if needed and start the resumer."""
        await self.db.start()
        if self.resumer is not None:
            await self.resumer.start()

    async def close(self) -> None:
        """Stop gracefully: executions in flight finish their current step, checkpoint and
        release their lease, so another process can take over at once."""
        self._stopping = True
        if self.resumer is not None:
            await self.resumer.close()
        self._born.clear()
        await self.db.close()

    # --- public verbs ----------------------------------------------------------------------

    async def new_workflow(self, data: Workflow, id: str | None = None) -> str:
        """Store a new workflow and ask for its execution. Returns its id."""
        cls = type(data)
        if self.workflows.get(cls.workflow_type) is not cls:
            raise UnknownWorkflowType(f"workflow type {cls.workflow_type!r} is not registered")
        st.validate(data.definition(), set(self.callbacks))
        now = self.clock.now()
        record = Record(
            id=id or uuid.uuid4().hex,
            type=cls.workflow_type,
            status=Status.RUNNING,
            data=data.model_dump(mode="json"),
            state=State(),
            due_at=now,
            created_at=now,
            updated_at=now,
            # This process runs it right away: born leased, it needs no separate claim.
            lease_owner=self.worker_id if self.resumer is not None else None,
            lease_expires_at=now + self.lease if self.resumer is not None else None,
            audit=[AuditEntry("created", input=data.model_dump(mode="json"))],
        )

        def run() -> None:
            if record.lease_owner is not None:
                self._keep_born(record)
            self._wake(record.id)

        # It runs once committed; the caller hears "created" once it is durable too.
        await self.db.create(record, committed=run)
        return record.id

    async def get(self, workflow_id: str) -> WorkflowInfo:
        record = await self.db.get(workflow_id)
        return WorkflowInfo(
            id=record.id,
            type=record.type,
            status=record.status,
            data=self._load(record),
            state=record.state,
            output=record.output,
            error=record.error,
            attempts=record.attempts,
            version=record.version,
            due_at=record.due_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    async def open_waits(self, workflow_id: str) -> list[tuple[str, WaitEvent]]:
        """(thread id, event) of every wait the workflow's threads can be answered on now,
        in thread order."""
        state = (await self.db.get(workflow_id)).state
        return [
            (t.id, e)
            for t in state.threads
            if t.status == ThreadStatus.BLOCKED
            for e in t.events
            if e.status in OPEN
        ]

    async def waiting_request(
        self, workflow_id: str, event: str, thread: str | None = None
    ) -> CallbackRequest:
        """The request that answers the workflow's open wait for `event` (by name; in
        `thread` when several threads wait for it), as its setup was given: for callers
        that know what a workflow waits for but not its position, such as a button that
        outlives many waits. `LookupError` names what it waits for instead (a workflow
        that ended waits for nothing)."""
        waits = await self.open_waits(workflow_id)
        found = [(t, e) for t, e in waits if e.name == event and thread in (None, t)]
        if not found:
            where = "" if thread is None else f" in thread {thread!r}"
            names = ", ".join(f"{e.name!r} ({t})" for t, e in waits) or "nothing"
            raise LookupError(
                f"workflow {workflow_id} does not wait for {event!r}{where}; it waits for {names}"
            )
        if len(found) > 1:
            threads = ", ".join(t for t, _ in found)
            raise LookupError(
                f"threads {threads} of workflow {workflow_id} all wait for {event!r}: "
                "say which with thread="
            )
        ((thread_id, e),) = found
        return CallbackRequest(
            workflow_id=workflow_id,
            thread_id=thread_id,
            name=e.name,
            pc=e.pc,
            setup_data=e.setup_data,
            waiting_since=e.since,
            setup_attempt=e.setup_started,
        )

    async def load(self, workflow_id: str) -> Workflow:
        """The workflow's data as its model, with the engine's services (for hooks that
        run outside a step, such as `on_cancel`)."""
        return self._load(await self.db.get(workflow_id))

    async def history(self, workflow_id: str) -> list[dict[str, Any]]:
        await self.db.get(workflow_id)
        return await self.db.history(workflow_id)

    async def execute(self, workflow_id: str) -> None:
        """Run the workflow until every thread blocks or it ends, then set up its waits.

        Safe to call at any time from any process: a workflow leased by another live
        process is left alone, and one of a type this engine does not know raises
        `UnknownWorkflowType` and is left as it is."""
        lock = self._locks.setdefault(workflow_id, asyncio.Lock())
        token = current_workflow.set(workflow_id)
        try:
            async with lock:
                await self._execute(workflow_id)
        finally:
            current_workflow.reset(token)
            if not lock.locked() and self._locks.get(workflow_id) is lock:
                del self._locks[workflow_id]

    async def on_callback(
        self, request: CallbackRequest, input: Any = None, actor: str = ""
    ) -> Any:
        """Apply an event to a waiting thread. Raises `StaleCallback` if the wait is over,
        `WorkflowFinished` if the workflow ended; either way nothing changes."""

        kind = ""
        leased: Record | None = None

        async def apply(record: Record) -> Any:
            nonlocal kind, leased
            kind = record.type
            _check_running(record)
            self._check_known(record)
            open_wait(record.state, request)  # a stale request fails before the data loads
            wf = self._load(record)
            output = await self.interpreter.handle_callback(wf, record.state, request, input)
            record.data = wf.model_dump(mode="json")
            record.status = Status.RUNNING
            now = self.clock.now()
            record.due_at = now
            if self.resumer is not None and (
                record.lease_expires_at is None or record.lease_expires_at < now
            ):
                # This process runs what follows right away: take the lease now.
                record.lease_owner, record.lease_expires_at = self.worker_id, now + self.lease
                leased = record
            record.audit.append(
                AuditEntry(
                    "callback",
                    name=request.name,
                    thread_id=request.thread_id,
                    pc=request.pc,
                    input=_json(input),
                    output=_json(output),
                    actor=actor,
                )
            )
            return output

        token = current_workflow.set(request.workflow_id)
        started = time.perf_counter()
        try:
            output = await self.db.update(request.workflow_id, apply)
        except (StatementNotFound, CorruptWorkflow) as e:
            await self._fail_waiting(request.workflow_id, f"{type(e).__name__}: {e}")
            raise
        except Exception:
            self.observer.callback(kind, time.perf_counter() - started, False)
            raise
        finally:
            current_workflow.reset(token)
        self.observer.callback(kind, time.perf_counter() - started, True)
        if leased is not None:
            # Leased here by this very write, so no execution of ours holds it: what
            # follows starts from the record as written, as a new workflow's does.
            self._keep_born(leased)
        self._wake(request.workflow_id)
        return output

    async def check_callback(self, request: CallbackRequest) -> Any:
        """The handler that would take this callback now, without applying anything; raises
        as `on_callback` would if the wait is over. For a quick answer before slower work
        (a Slack modal asking for a reason, say); `on_callback` checks again."""
        record = await self.db.get(request.workflow_id)
        _check_running(record)
        self._check_known(record)
        thread, _ = open_wait(record.state, request)
        return event_of(self._load(record), thread, request.name).handler

    async def _fail_waiting(self, workflow_id: str, error: str) -> None:
        """A callback found the workflow broken (code or data): fail it so an operator sees
        it, instead of leaving it waiting for an answer it can never take."""

        async def apply(record: Record) -> None:
            if record.status not in TERMINAL:
                _fail(record, error)
                record.due_at = self.clock.now()

        try:
            await self.db.update(workflow_id, apply)
        except CorruptWorkflow:
            await self._fail_corrupt(workflow_id, error)
        self._wake(workflow_id)

    async def cancel(self, workflow_id: str, reason: str = "cancelled", actor: str = "") -> None:
        """End the workflow as cancelled and tear down every open wait; the workflow's
        `on_cancel(reason, actor)` then runs, at least once, in a process that runs
        workflows (see workflows.cancellation)."""

        async def apply(record: Record) -> None:
            if record.status in TERMINAL:
                raise WorkflowFinished(f"workflow {record.id} is already {record.status}")
            record.status = Status.CANCELLED
            record.error = reason
            record.state.orphan_all()
            owe_on_cancel(record.state, reason, actor)
            record.due_at = self.clock.now()
            record.audit.append(AuditEntry("cancelled", input=reason, actor=actor))

        await self.db.update(workflow_id, apply)
        self._wake(workflow_id)

    async def retry(self, workflow_id: str, actor: str = "") -> None:
        """Run a failed workflow again from where its threads are (after a repair)."""

        async def apply(record: Record) -> None:
            if record.status != Status.FAILED:
                raise WorkflowError(f"workflow {record.id} is {record.status}, not failed")
            record.status = Status.RUNNING
            record.error = None
            record.attempts = 0
            for thread in record.state.threads:
                if thread.status == ThreadStatus.BLOCKED and not thread.events:
                    thread.status = ThreadStatus.GOTO  # re-arm the wait torn down on failure
            record.due_at = self.clock.now()
            record.audit.append(AuditEntry("retried", actor=actor))

        await self.db.update(workflow_id, apply)
        self._wake(workflow_id)

    async def goto(
        self, workflow_id: str, step: str, thread_id: str = MAIN_THREAD, actor: str = ""
    ) -> None:
        """Move a thread to the named statement; it runs that statement next. Open waits of
        the thread are torn down. Use with `retry` to repair a failed workflow."""

        async def apply(record: Record) -> None:
            thread = record.state.thread(thread_id)
            if thread is None:
                raise WorkflowError(f"workflow {record.id} has no thread {thread_id!r}")
            wf = self._load(record)
            root = thread_root(wf, thread)
            named = st.build_index(root).named
            if step not in named or isinstance(named[step], st.On):
                raise StatementNotFound(
                    f"no statement {step!r} in thread {thread_id!r} of {record.type}; "
                    f"known: {', '.join(n for n, s in named.items() if not isinstance(s, st.On))}"
                )
            record.state.orphan(thread)
            thread.step = step
            thread.status = ThreadStatus.GOTO
            if record.status not in TERMINAL:
                record.status = Status.RUNNING
                record.due_at = self.clock.now()
            record.audit.append(AuditEntry("goto", name=step, thread_id=thread_id, actor=actor))

        await self.db.update(workflow_id, apply)
        self._wake(workflow_id)

    async def set_data(self, workflow_id: str, changes: Mapping[str, Any], actor: str = "") -> None:
        """Change data fields; the result must validate against the workflow model."""

        async def apply(record: Record) -> None:
            cls = self._class(record)
            try:
                wf = cls.model_validate({**record.data, **changes})
            except ValidationError as e:
                raise CorruptWorkflow(f"the new data does not validate: {e}") from e
            record.data = wf.model_dump(mode="json")
            record.audit.append(AuditEntry("data_set", input=_json(dict(changes)), actor=actor))

        await self.db.update(workflow_id, apply)
        self._wake(workflow_id)

    # --- timers (durable, fired by the resumer) --------------------------------------------

    async def add_timer(self, request: CallbackRequest, fire_at: datetime) -> Timer:
        key = f"{request.workflow_id}:{request.thread_id}:{request.name}:{request.pc}"
        timer = await self.db.add_timer(Timer(key, request.workflow_id, request, fire_at))
        if self.resumer is not None:
            self.resumer.timer_added(timer)
        return timer

    async def delete_timer(self, request: CallbackRequest) -> None:
        await self.db.delete_timer(
            f"{request.workflow_id}:{request.thread_id}:{request.name}:{request.pc}"
        )

    async def fire_timer(self, timer: Timer) -> bool:
        """Deliver a due timer; a timer whose wait is already over is simply dropped.
        Returns False when the timer is left for a process that runs its workflow's type."""
        try:
            await self.on_callback(timer.request, None, actor="timer")
        except CallbackError:
            pass
        except UnknownWorkflowType:
            return False
        except WorkflowError as e:  # the workflow is gone or broken: the timer is moot
            log.warning("timer %s dropped: %s", timer.key, e)
        await self.db.delete_timer(timer.key)
        return True

    # --- execution -------------------------------------------------------------------------

    def _keep_born(self, record: Record) -> None:
        if len(self._born) >= _MAX_BORN:  # executions are not keeping up: read back
            self._born.clear()
        self._born[record.id] = record

    def _wake(self, workflow_id: str, at: datetime | None = None) -> None:
        if self.resumer is not None:
            self.resumer.wake(workflow_id, at)

    def _check_known(self, record: Record) -> None:
        """Refuse, before anything changes, a workflow of a type this process does not run
        (a rolling deploy adding it, say): it stays as it is for a process that does."""
        if record.type not in self.workflows:
            error = UnknownWorkflowType(
                f"workflow {record.id} is of type {record.type!r}, which this process does "
                "not run: it is left as it is for a process that does"
            )
            log.warning("%s", error, extra={"workflow_id": record.id})
            raise error

    def _class(self, record: Record) -> type[Workflow]:
        cls = self.workflows.get(record.type)
        if cls is None:
            raise UnknownWorkflowType(f"workflow type {record.type!r} is not registered")
        return cls

    def _load(self, record: Record) -> Workflow:
        cls = self._class(record)
        try:
            wf = cls.model_validate(record.data)
        except ValidationError as e:
            raise CorruptWorkflow(f"workflow {record.id}: stored data is invalid: {e}") from e
        wf._services = self.services
        wf._workflow_id = record.id
        wf._clock = self.clock
        return wf

    async def _execute(self, workflow_id: str) -> None:
        try:
            record = await self._claim(workflow_id)
        except CorruptWorkflow as e:
            await self._fail_corrupt(workflow_id, str(e))
            return
        if record is None:
            return
        heartbeat = _Heartbeat(self, workflow_id)
        try:
            budget = self.steps_per_run
            while True:
                # Steps first: a person may be waiting for one (the outcome of a request);
                # nobody waits for a teardown (a deleted message), which follows.
                record, budget = await self._run_threads(record, budget)
                record, released = await self._teardowns(record)
                has_budget = budget > 0 and not self._stopping
                if not released:
                    record, released = await self._setups(record, has_budget)
                if released:
                    if record.due_at is not None:
                        self._wake(record.id, record.due_at)
                    return
                record, again = await self._release(record, has_budget)
                if not again:
                    return
                budget = max(budget, 1)
        except BaseException:
            await asyncio.shield(self._drop_lease(workflow_id))
            raise
        finally:
            heartbeat.stop()

    async def _fail_corrupt(self, workflow_id: str, error: str) -> None:
        mark_failed = getattr(self.db, "mark_failed", None)
        if mark_failed is not None:
            await mark_failed(workflow_id, error)
        log.error("workflow %s failed: %s", workflow_id, error, extra={"workflow_id": workflow_id})

    async def _claim(self, workflow_id: str) -> Record | None:
        """Take the execution lease, or return None if another live process holds it or
        the workflow has ended with nothing left to tear down."""
        born = self._born.pop(workflow_id, None)
        while True:
            # A record just created here is what the row holds, unless an operator changed
            # it since; then the first checkpoint finds a new version and reloads, as when a
            # change lands while a step runs.
            record = born or await self.db.get(workflow_id)
            born = None
            now = self.clock.now()
            if (
                record.lease_owner not in (None, self.worker_id)
                and record.lease_expires_at is not None
                and record.lease_expires_at > now
            ):
                return None
            if record.status in TERMINAL and not _teardowns_due(record, now):
                if not _left_behind(record):
                    return None
                # Nothing is left to run, yet a lease or a due time remains: the execution
                # that recorded the last teardowns died before giving them back, or did so
                # after its lease ran out and a sweep claimed the workflow for us. Give
                # them back here; else every sweep claims it again and none releases it.
                self._settle(record, now, True)
                if await self.db.save(record):
                    return None
                continue
            self._check_known(record)
            if (
                record.lease_owner == self.worker_id
                and record.lease_expires_at is not None
                and record.lease_expires_at > now
            ):
                return record  # already ours: taken at creation, callback or sweep
            record.lease_owner = self.worker_id
            record.lease_expires_at = now + self.lease
            if await self.db.save(record):
                return record

    async def _drop_lease(self, workflow_id: str) -> None:
        try:

            async def apply(record: Record) -> None:
                if record.lease_owner == self.worker_id:
                    record.lease_owner = None
                    record.lease_expires_at = None

            await self.db.update(workflow_id, apply)
        except Exception:  # the lease will expire by itself
            log.exception("could not release the lease of %s", workflow_id)

    async def _checkpoint(self, record: Record) -> Record | None:
        """Save; on a concurrent change return None (the caller reloads and redoes)."""
        now = self.clock.now()
        if record.lease_owner == self.worker_id:
            record.lease_expires_at = now + self.lease
        record.updated_at = now
        if await self.db.save(record):
            return record
        return None

    async def _reload(self, workflow_id: str) -> Record | None:
        record = await self.db.get(workflow_id)
        return record if record.lease_owner == self.worker_id else None

    async def _run_threads(self, record: Record, budget: int) -> tuple[Record, int]:
        if record.status in TERMINAL:
            return record, budget
        now = self.clock.now()
        if record.attempts and record.due_at is not None and record.due_at > now:
            return record, budget  # a step failed; wait for its backoff
        try:
            wf = self._load(record)
        except WorkflowError as e:
            _fail(record, str(e))
            return await self._save_or_reload(record), budget
        state = record.state
        recheck = True
        put_off = False  # a thread's due time changed since the last checkpoint
        # A step's checkpoint is put off until the walk after it reaches code to run: when
        # that walk only blocks the thread or ends it (no code runs in between), one write
        # records both, so a step before a wait or an end costs one commit, not two. A
        # crash before that write runs the step again, as a crash before its own would.
        unsaved = False

        async def save_before_running() -> None:
            nonlocal record, unsaved, put_off
            if unsaved:
                saved = await self._checkpoint(record)
                if saved is None:
                    raise _Changed
                record, unsaved, put_off = saved, False, False

        while budget > 0 and not self._stopping:
            thread = next_thread(state, recheck, now)
            if thread is None:
                break
            recheck = False
            put_off = put_off or thread.due_at is not None
            thread.due_at = None
            started = time.perf_counter()
            try:
                outcome, change = await self.interpreter.step(
                    wf, state, thread, save_before_running
                )
                self.observer.step(record.type, time.perf_counter() - started, True)
            except _Changed:  # changed by someone else since it was read: start again
                reloaded = await self._reload(record.id)
                if reloaded is None:
                    return record, 0
                return await self._run_threads(reloaded, budget)
            except (DefinitionError, StatementNotFound, NoManager) as e:
                _fail(record, f"{type(e).__name__}: {e}")
                return await self._save_failure(record, wf), budget
            except RetryLater as later:
                # Not a failure: that thread is due again then (nothing counted, no error
                # recorded), and only it waits: the others run on. The step's data
                # changes are dropped with the step, as a failed step's are.
                wf = self._load(record)
                thread.due_at = self.clock.now() + later.delay
                put_off = True
                log.debug("step of workflow %s put off: %s", record.id, later)
                continue
            except Exception as e:
                self.observer.step(record.type, time.perf_counter() - started, False)
                self.observer.retry(record.type)
                log.warning(
                    "step failed in workflow %s thread %s after %r: %s",
                    record.id,
                    thread.id,
                    thread.step,
                    e,
                    extra={"workflow_id": record.id},
                )
                self._step_failed(record, thread, e)
                return await self._save_failure(record, wf), budget
            if record.attempts:
                record.attempts, record.error = 0, None  # the failing step went through
            if change is False:
                if type(outcome) is st.BlockedFor:
                    continue  # a WaitFor checked again still does not hold: nothing to save
                if type(outcome) is st.Blocked:
                    self._fresh.update((record.id, thread.id, e.name, e.pc) for e in thread.events)
            elif type(change) is Ended:
                if change.error is None:
                    _finish(record, change.output)
                else:
                    _fail(record, change.error)
            budget -= 1
            recheck = change is not False
            record.data = wf.model_dump(mode="json")
            if type(outcome) is st.Ran:
                unsaved = True
                continue
            unsaved = False
            released = (
                record.status in TERMINAL
                and record.lease_owner == self.worker_id
                # Nothing follows (unless teardowns are due): release in the same write.
                and self._settle(record, self.clock.now(), True)
            )
            saved = await self._checkpoint(record)
            if saved is None:
                reloaded = await self._reload(record.id)
                if reloaded is None:
                    return record, 0
                return await self._run_threads(reloaded, budget)
            record = saved
            put_off = False
            if released and record.due_at is not None:
                self._wake(record.id, record.due_at)  # a teardown to retry later
            if record.status in TERMINAL:
                break
        if put_off or unsaved:
            record = await self._save_or_reload(record)
        return record, budget

    async def _save_failure(self, record: Record, wf: Workflow) -> Record:
        """Save a failed step; if it failed the workflow, give the workflow its say."""
        saved = await self._save_or_reload(record)
        if saved is record and record.status == Status.FAILED:
            try:
                await wf.on_failure(record.error or "")
            except Exception:
                log.exception(
                    "on_failure of workflow %s raised", record.id, extra={"workflow_id": record.id}
                )
        return saved

    async def _save_or_reload(self, record: Record) -> Record:
        saved = await self._checkpoint(record)
        if saved is not None:
            return saved
        return await self._reload(record.id) or record

    def _step_failed(self, record: Record, thread: Thread, error: Exception) -> None:
        record.attempts += 1
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, StepFailed):  # no retry can mend it
            _fail(record, f"step after {thread.step or 'start'!r} failed: {message}")
            return
        if record.attempts >= self.max_attempts:
            _fail(
                record,
                f"step after {thread.step or 'start'!r} failed {record.attempts} times: {message}",
            )
            return
        record.error = message
        record.due_at = self.clock.now() + self._backoff(record.attempts)

    def _backoff(self, attempts: int) -> timedelta:
        delay = self.retry_base * (1 << min(max(attempts - 1, 0), 30))
        return min(delay, self.retry_max)

    async def _teardowns(self, record: Record) -> tuple[Record, bool]:
        """Tear down finished waits and record the results; when nothing else is left to
        do (no setup, step or teardown due now), release the lease in the same write, so
        a finished workflow's last teardown costs one commit, not a second one to give the
        lease back. Returns the record and whether released."""
        now = self.clock.now()
        todo = [(tid, e) for tid, e in _all_events(record.state) if _due(e, TEARDOWN, now)]
        if not todo:
            return record, False
        handlers = self._handlers(record)
        results: dict[tuple[str, str, int], str | datetime | None] = {}
        for thread_id, event in todo:
            request = _request(record, thread_id, event)
            manager = self.callbacks.get(event.type)
            try:
                if manager is None:
                    raise NoManager(f"no callback manager for {event.type!r}")
                await manager.teardown(request, handlers.get(event.name), event.handled)
                results[(thread_id, event.name, event.pc)] = None
            except RetryLater as later:  # not a failure: its time is stored, nothing waits
                results[(thread_id, event.name, event.pc)] = self.clock.now() + later.delay
            except Exception as e:
                log.warning(
                    "teardown of %s failed: %s", event.name, e, extra={"workflow_id": record.id}
                )
                results[(thread_id, event.name, event.pc)] = f"{type(e).__name__}: {e}"

        released = False

        async def apply(fresh: Record) -> Record:
            nonlocal released
            now = self.clock.now()
            for thread in fresh.state.threads:
                thread.events = [
                    e
                    for e in thread.events
                    if not self._settle_teardown(thread.id, e, results, now)
                ]
            fresh.state.orphans = [
                o
                for o in fresh.state.orphans
                if not self._settle_teardown(o.thread_id, o.event, results, now)
            ]
            # Only when nothing is due now (no setup, step or teardown): otherwise the
            # setups and the release that follow decide, as they did.
            released = (
                fresh.lease_owner == self.worker_id
                and not _work_now(fresh, now)
                and self._settle(fresh, now, True)
            )
            fresh.flush_now = not _left_to_the_world(fresh, released)
            return fresh

        record = await self._update_keep_lease(record, apply)
        return record, released

    def _settle_teardown(
        self,
        thread_id: str,
        event: WaitEvent,
        results: dict[tuple[str, str, int], str | datetime | None],
        now: datetime,
    ) -> bool:
        """Apply one teardown result; True when the event is gone for good."""
        key = (thread_id, event.name, event.pc)
        if key not in results or event.status not in TEARDOWN:
            return False
        error = results[key]
        if error is None:
            return True
        if isinstance(error, datetime):  # RetryLater: due again then, as it was
            event.retry_at = error
            return False
        event.status = EventStatus.TEARDOWN_ERROR
        event.error = error
        event.attempts += 1
        event.retry_at = now + self._backoff(event.attempts)
        return False

    async def _setups(self, record: Record, has_budget: bool) -> tuple[Record, bool]:
        """Set up pending waits; record the results, and release the lease in the same
        write when nothing else is left to do. Returns the record and whether released."""
        now = self.clock.now()
        todo = [
            (t.id, e)
            for t in record.state.threads
            for e in t.events
            if _due(e, (EventStatus.PENDING_SETUP, EventStatus.SETUP_ERROR), now)
        ]
        if not todo:
            return record, False
        keys = {(t, e.name, e.pc) for t, e in todo}
        again = {k for k in keys if (record.id, *k) not in self._fresh}
        self._fresh.difference_update((record.id, *k) for k in keys)
        if again:

            async def starting(fresh: Record) -> Record:
                # Recorded before the outside world is touched, so a setup that runs again
                # after a crash knows it may have had effects already (and can look).
                for thread_id, event in _all_events(fresh.state):
                    if (thread_id, event.name, event.pc) in again:
                        event.setup_started += 1
                return fresh

            record = await self._update_keep_lease(record, starting)
            todo = [
                (t, e)
                for t, e in _all_events(record.state)
                if (t, e.name, e.pc) in keys
                and e.status in (EventStatus.PENDING_SETUP, EventStatus.SETUP_ERROR)
            ]
        handlers = self._handlers(record)
        results: dict[tuple[str, str, int], tuple[str, str | None]] = {}
        for thread_id, event in todo:
            request = _request(record, thread_id, event)
            manager = self.callbacks.get(event.type)
            handler = handlers.get(event.name)
            try:
                if manager is None:
                    raise NoManager(f"no callback manager for {event.type!r}")
                if handler is None:
                    raise StatementNotFound(f"event {event.name!r} is not in the definition")
                results[(thread_id, event.name, event.pc)] = (
                    await manager.setup(request, handler),
                    None,
                )
            except Exception as e:
                log.warning(
                    "setup of %s failed: %s", event.name, e, extra={"workflow_id": record.id}
                )
                results[(thread_id, event.name, event.pc)] = ("", f"{type(e).__name__}: {e}")
        late: list[tuple[str, WaitEvent]] = []
        released = False

        async def apply(fresh: Record) -> Record:
            nonlocal released
            now = self.clock.now()
            seen = set()
            for thread_id, event in _all_events(fresh.state):
                key = (thread_id, event.name, event.pc)
                if key not in results:
                    continue
                seen.add(key)
                data, error = results[key]
                if error is not None:
                    if event.status in (EventStatus.PENDING_SETUP, EventStatus.SETUP_ERROR):
                        event.status = EventStatus.SETUP_ERROR
                        event.error = error
                        event.attempts += 1
                        event.retry_at = now + self._backoff(event.attempts)
                    continue
                event.setup_data = data
                event.error = ""
                event.attempts = 0
                event.retry_at = None
                if event.status in (EventStatus.PENDING_SETUP, EventStatus.SETUP_ERROR):
                    event.status = EventStatus.SETUP
            # Torn down while we were setting it up: undo what setup just created.
            for thread_id, event in todo:
                key = (thread_id, event.name, event.pc)
                data, error = results[key]
                if key not in seen and error is None:
                    late.append((thread_id, replace(event, setup_data=data)))
            released = fresh.lease_owner == self.worker_id and self._settle(
                fresh, now, has_budget and not late
            )
            fresh.flush_now = bool(late) or not _left_to_the_world(fresh, released)
            return fresh

        record = await self._update_keep_lease(record, apply)
        for thread_id, event in late:
            manager = self.callbacks[event.type]
            try:
                await manager.teardown(_request(record, thread_id, event), None, False)
            except Exception:
                log.exception("teardown after a late setup failed for %s", event.name)
        return record, released

    async def _update_keep_lease(
        self, record: Record, apply: Callable[[Record], Awaitable[Record]]
    ) -> Record:
        async def guarded(fresh: Record) -> Record:
            if fresh.lease_owner == self.worker_id:  # never another's, nor one nobody holds
                fresh.lease_expires_at = self.clock.now() + self.lease
            return await apply(fresh)

        return await self.db.update(record.id, guarded)

    def _handlers(self, record: Record) -> dict[str, Any]:
        """Handlers by event name for every thread, and for every thread that ended owing
        teardowns (empty if the data no longer loads)."""
        try:
            wf = self._load(record)
        except WorkflowError:
            return {}
        handlers: dict[str, Any] = {}
        state = record.state
        running = {t.id for t in state.threads}
        ended = {o.thread_id: Thread(o.thread_id, o.go) for o in state.orphans}
        for thread in [*state.threads, *(t for i, t in ended.items() if i not in running)]:
            try:
                handlers.update({n: on.handler for n, on in thread_events(wf, thread).items()})
            except WorkflowError:
                continue
        return handlers

    def _settle(self, record: Record, now: datetime, has_budget: bool) -> bool:
        """Unless more work is due now (and may be done now), give up the lease and record
        when the workflow is next due. Returns whether it did."""
        work_now = _work_now(record, now)
        if work_now and has_budget:
            return False
        record.due_at = now if work_now else _next_due(record)
        record.lease_owner = None
        record.lease_expires_at = None
        if record.status not in TERMINAL:
            blocked = all(t.status not in RUNNABLE for t in record.state.threads)
            record.status = Status.WAITING if blocked and not record.attempts else Status.RUNNING
        return True

    async def _release(self, record: Record, has_budget: bool) -> tuple[Record, bool]:
        """Give up the lease and record when the workflow is next due; or, if more work
        turned up, keep going."""
        if record.lease_owner != self.worker_id:
            return record, False
        if not self._settle(record, self.clock.now(), has_budget):
            return record, True
        if not await self.db.save(record):
            fresh = await self._reload(record.id)
            return (fresh, True) if fresh is not None else (record, False)
        if record.due_at is not None:
            self._wake(record.id, record.due_at)
        return record, False


class _Heartbeat:
    """Keeps an execution's lease alive while it runs longer than a third of the lease (a
    step waiting for a rate budget, a slow webhook), so no other process claims the
    workflow and runs the same step beside it. Costs nothing to an execution that ends
    sooner: one timer, cancelled."""

    def __init__(self, engine: Engine, workflow_id: str) -> None:
        self.engine = engine
        self.workflow_id = workflow_id
        self.every = engine.lease.total_seconds() / 3
        self.task: asyncio.Task[None] | None = None
        self.timer = asyncio.get_running_loop().call_later(self.every, self._start)

    def _start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        renew = getattr(self.engine.db, "renew_lease", None)
        while renew is not None:  # a DB without it leaves long executions to their lease
            until = self.engine.clock.now() + self.engine.lease
            try:
                if not await renew(self.workflow_id, self.engine.worker_id, until):
                    return  # not ours any more: the next checkpoint finds out
            except Exception:
                log.warning("could not renew the lease of %s", self.workflow_id, exc_info=True)
            await asyncio.sleep(self.every)

    def stop(self) -> None:
        self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


# --- helpers over the execution state --------------------------------------------------------


class _Changed(Exception):
    """A put-off checkpoint found the record changed by someone else."""


def _check_running(record: Record) -> None:
    if record.status in TERMINAL:
        raise WorkflowFinished(f"workflow {record.id} is {record.status}")


def _request(record: Record, thread_id: str, event: WaitEvent) -> CallbackRequest:
    return CallbackRequest(
        workflow_id=record.id,
        thread_id=thread_id,
        name=event.name,
        pc=event.pc,
        setup_data=event.setup_data,
        waiting_since=event.since,
        setup_attempt=event.setup_started,
    )


def _all_events(state: State) -> list[tuple[str, WaitEvent]]:
    return [(t.id, e) for t in state.threads for e in t.events] + [
        (o.thread_id, o.event) for o in state.orphans
    ]


def _due(event: WaitEvent, statuses: tuple[EventStatus, ...], now: datetime) -> bool:
    return event.status in statuses and (event.retry_at is None or event.retry_at <= now)


def _teardowns_due(record: Record, now: datetime) -> bool:
    return any(_due(e, TEARDOWN, now) for _, e in _all_events(record.state))


def _work_now(record: Record, now: datetime) -> bool:
    if _teardowns_due(record, now):
        return True
    if record.status in TERMINAL:
        return False
    if any(
        _due(e, (EventStatus.PENDING_SETUP, EventStatus.SETUP_ERROR), now)
        for t in record.state.threads
        for e in t.events
    ):
        return True
    in_backoff = bool(record.attempts) and record.due_at is not None and record.due_at > now
    return not in_backoff and any(
        t.status in RUNNABLE and (t.due_at is None or t.due_at <= now) for t in record.state.threads
    )


def _left_to_the_world(record: Record, released: bool) -> bool:
    """After a setup's or a teardown's record that released the workflow with nothing due,
    nothing of it runs (no step, setup, teardown or `on_cancel`) until something from
    outside commits durably: a callback, a timer firing (its callback), an operator
    change. That commit comes later in the database's log, so it makes this one durable
    before anything relies on it, and this one need not wait for the disk itself
    (`Record.flush_now`). What a power loss before then could undo is only this record
    of what the manager already did, which is then done again, as after a crash between
    the manager's call and the write; the store bounds that window to milliseconds.
    Anything due (a retry, a step put off) keeps the write durable at once."""
    return released and record.due_at is None


def _left_behind(record: Record) -> bool:
    """An ended workflow with nothing due still holds a lease or a stale due time."""
    return record.lease_owner is not None or record.due_at != _next_due(record)


def _next_due(record: Record) -> datetime | None:
    times = [
        e.retry_at
        for _, e in _all_events(record.state)
        if e.retry_at is not None
        and e.status
        in (EventStatus.SETUP_ERROR, EventStatus.TEARDOWN_ERROR, EventStatus.PENDING_TEARDOWN)
    ]
    if record.status not in TERMINAL:
        if record.attempts and record.due_at is not None:
            times.append(record.due_at)
        times.extend(
            t.due_at for t in record.state.threads if t.due_at is not None and t.status in RUNNABLE
        )
    return min(times) if times else None


def _finish(record: Record, value: Any) -> None:
    record.status = Status.FINISHED
    record.output = _json(value)
    record.error = None
    record.state.orphan_all()


def _fail(record: Record, error: str) -> None:
    record.status = Status.FAILED
    record.error = error
    record.state.orphan_all()
