"""The default resumer: APScheduler 3 (`AsyncIOScheduler`) inside the process.

The database is the source of truth; the scheduler only wakes this process at the right
moments. Three paths lead to an execution:
- `wake(id)` right after a workflow is created or answered runs it at once (an asyncio
  task; repeated wakes of a running workflow coalesce into one more run);
- `wake(id, at)` after a failure schedules an APScheduler date job at the retry time;
- a periodic sweep reads what is due from the database (`due_at` passed, lease free or
  expired) and runs it, and schedules the timers that come due before the next sweep.
So a job lost with a crashed process, a job APScheduler would drop as misfired, or a
workflow created by another process is still picked up, within one sweep interval. No
APScheduler job store is shared between processes: jobs are in memory and rebuilt from the
database, and the row lease makes sure only one process executes a workflow at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from workflows.errors import UnknownWorkflowType
from workflows.types import Timer

if TYPE_CHECKING:
    from workflows.engine import Engine

log = logging.getLogger("workflows.resumer")


class AttachedResumer:
    """The part every resumer shares: the engine it serves, given by `Engine.__init__`."""

    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("resumer not attached to an engine")
        return self._engine

    def attach(self, engine: Engine) -> None:
        self._engine = engine


class SchedulerResumer(AttachedResumer):
    def __init__(
        self,
        *,
        sweep_interval: float = 1.0,
        batch: int = 200,
        concurrency: int = 32,
        error_delay: timedelta = timedelta(seconds=5),
        before_execution: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`before_execution` is awaited before each execution starts (the bot uses it to
        answer the Slack requests in flight first)."""
        self.sweep_interval = sweep_interval
        self.before_execution = before_execution
        self.batch = batch
        self.error_delay = error_delay
        self._scheduler: AsyncIOScheduler | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.sweep_interval,
            id="sweep",
            next_run_time=self.engine.clock.now(),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.start()

    async def close(self, timeout: float = 30.0) -> None:
        """Stop waking; let executions in flight finish their current step."""
        self._closing = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def wake(self, workflow_id: str, at: datetime | None = None) -> None:
        if self._closing:
            return
        if at is None or at <= self.engine.clock.now():
            self._submit(workflow_id)
        elif self._scheduler is not None:
            self._scheduler.add_job(
                self._wake_job,
                "date",
                run_date=at,
                args=[workflow_id],
                id=f"wake:{workflow_id}",
                replace_existing=True,
                misfire_grace_time=None,
            )

    async def _wake_job(self, workflow_id: str) -> None:
        # A coroutine, so APScheduler runs it on the event loop, not in a worker thread.
        self._submit(workflow_id)

    def timer_added(self, timer: Timer) -> None:
        pass  # the next sweep claims it (a sweep interval ahead of its deadline)

    def _schedule_timer(self, timer: Timer) -> None:
        if self._scheduler is None or self._closing:
            return
        self._scheduler.add_job(
            self._fire,
            "date",
            run_date=max(timer.fire_at, self.engine.clock.now()),
            args=[timer],
            id=f"timer:{timer.key}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def _fire(self, timer: Timer) -> None:
        try:
            await self.engine.fire_timer(timer)
        except Exception:  # the row stays; the next sweep tries again
            log.exception("firing timer %s failed", timer.key)

    async def sweep(self) -> None:
        """Run what the database says is due; schedule timers due before the next sweep."""
        if self._closing:
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # close() waits for it like for an execution
        try:
            engine = self.engine
            now = engine.clock.now()
            types = engine.workflows.keys()  # the others wait for a process that runs them
            for workflow_id in await engine.db.claim_due(
                now, engine.worker_id, now + engine.lease, self.batch, types
            ):
                self._submit(workflow_id)
            # Timers due before the next sweep, leased to this process until well after.
            horizon = now + timedelta(seconds=self.sweep_interval)
            for timer in await engine.db.claim_timers(
                horizon, engine.worker_id, horizon + engine.lease, now, self.batch, types
            ):
                self._schedule_timer(timer)
            unknown = await engine.db.count_unknown_types(now, types)
            if unknown:
                log.warning(
                    "due workflows wait for a process that runs their type (this one does not): %s",
                    ", ".join(f"{n} of {t!r}" for t, n in sorted(unknown.items())),
                )
        except Exception:
            log.exception("sweep failed")
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _submit(self, workflow_id: str) -> None:
        if self._closing:
            return
        if workflow_id in self._running:
            self._again.add(workflow_id)
            return
        self._running.add(workflow_id)
        task = asyncio.get_running_loop().create_task(self._run(workflow_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, workflow_id: str) -> None:
        try:
            while True:
                self._again.discard(workflow_id)
                if self.before_execution is not None:
                    await self.before_execution()
                async with self._slots:
                    try:
                        await self.engine.execute(workflow_id)
                    except UnknownWorkflowType:
                        return  # logged; the sweep of a process that runs its type takes it
                    except Exception:
                        log.exception(
                            "executing %s failed; retrying later",
                            workflow_id,
                            extra={"workflow_id": workflow_id},
                        )
                        self.wake(workflow_id, self.engine.clock.now() + self.error_delay)
                        return
                if workflow_id not in self._again or self._closing:
                    return
        finally:
            self._running.discard(workflow_id)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until no execution is in flight (for scripts and benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("executions still running")
            await asyncio.wait(set(self._tasks), timeout=remaining)
