"""A testing kit for workflow authors: a clock you move by hand and a resumer that runs
everything due until the engine is idle, so a test of a 24-hour timeout runs in
milliseconds and never sleeps; and verbs that answer a wait by its event name, as the
outside world would, and read the data back as its model, without reaching into the store:

    callbacks = {**default_callbacks(), "some_type": SomeManager()}
    async with WorkflowTestKit([Deploy], callbacks=callbacks) as kit:
        wid = await kit.engine.new_workflow(Deploy())
        await kit.drain()
        assert await kit.waiting(wid) == ["approval", "timeout"]
        await kit.answer(wid, "approval", {"user": "U1"})
        await kit.drain()
        assert (await kit.data(wid, Deploy)).approved

        other = await kit.engine.new_workflow(Deploy())
        await kit.advance(timedelta(hours=24))   # fires the timeout, runs what follows
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from workflows.engine import Engine
from workflows.errors import UnknownWorkflowType
from workflows.resumer import AttachedResumer
from workflows.types import CallbackManager, Timer
from workflows.workflow import Workflow

__all__ = ["DrainResumer", "FakeClock", "WorkflowTestKit"]

W = TypeVar("W", bound=Workflow)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class DrainResumer(AttachedResumer):
    """Runs nothing by itself. `drain()` executes every workflow that is due and fires every
    due timer, again and again, until nothing is left (by the engine's clock)."""

    def __init__(self) -> None:
        self._woken: set[str] = set()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def wake(self, workflow_id: str, at: datetime | None = None) -> None:
        if at is None or at <= self.engine.clock.now():
            self._woken.add(workflow_id)

    def timer_added(self, timer: Timer) -> None:
        pass  # found in the database by `drain`

    async def drain(self, max_rounds: int = 10_000) -> int:
        """Run until idle; returns how many executions ran."""
        runs = 0
        engine = self.engine
        for _ in range(max_rounds):
            now = engine.clock.now()
            # A timer or workflow of a type this engine does not know is left as it is.
            fired = [t for t in await engine.db.due_timers(now, 1000) if await engine.fire_timer(t)]
            due = await engine.db.due(now, 1000, engine.workflows.keys())
            ids = list(dict.fromkeys([*self._woken, *due]))
            self._woken.clear()
            if not ids and not fired:
                return runs
            for workflow_id in ids:
                try:
                    await engine.execute(workflow_id)
                except UnknownWorkflowType:
                    continue
                runs += 1
        raise RuntimeError(f"not idle after {max_rounds} rounds: a workflow never blocks")


class WorkflowTestKit:
    """An engine on a SQLite file (or `database_url`; `"memory://"` for the in-memory
    store) with a fake clock and a drain resumer."""

    def __init__(
        self,
        workflows: Sequence[type[Workflow]],
        *,
        callbacks: Mapping[str, CallbackManager] | None = None,
        database_url: str | None = None,
        path: Path | None = None,
        **engine_options: Any,
    ) -> None:
        db = None
        if database_url == "memory://":
            from workflows.testing.memory import MemoryStore

            db = MemoryStore()
        elif database_url is None:
            if path is None:
                import tempfile

                path = Path(tempfile.mkdtemp(prefix="workflows-test-")) / "test.db"
            database_url = f"sqlite:///{path}"
        self.clock = FakeClock()
        self.resumer = DrainResumer()
        self.engine = Engine(
            None if db is not None else database_url,
            db=db,
            workflows=workflows,
            callbacks=callbacks,
            resumer=self.resumer,
            clock=self.clock,
            **engine_options,
        )

    async def drain(self) -> int:
        return await self.resumer.drain()

    async def advance(self, delta: timedelta) -> int:
        """Move the clock and run everything that became due."""
        self.clock.advance(delta)
        return await self.drain()

    async def waiting(self, workflow_id: str) -> list[str]:
        """The events the workflow's threads wait for now (by event name, thread order)."""
        return [event.name for _, event in await self.engine.open_waits(workflow_id)]

    async def answer(
        self,
        workflow_id: str,
        event: str,
        input: Any = None,
        *,
        thread: str | None = None,
        actor: str = "",
    ) -> Any:
        """Answer the open wait for `event` as the outside world would: with the request
        its setup was given, through `engine.on_callback`. Returns the handler's output.
        `thread` picks the thread when several wait for the same event name."""
        request = await self.engine.waiting_request(workflow_id, event, thread)
        return await self.engine.on_callback(request, input, actor=actor)

    async def data(self, workflow_id: str, kind: type[W]) -> W:
        """The workflow's data as its model, checked to be a `kind` (typed, for asserts)."""
        data = (await self.engine.get(workflow_id)).data
        if not isinstance(data, kind):
            raise TypeError(
                f"workflow {workflow_id} is a {type(data).__name__}, not a {kind.__name__}"
            )
        return data

    async def __aenter__(self) -> WorkflowTestKit:
        await self.engine.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.close()
