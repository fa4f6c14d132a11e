"""Leases between processes: however executions and sweeps interleave, a workflow that has
ended keeps no lease and no due time (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from tests.helpers import Manual, waiting_request
from tests.processes import poll
from workflows import CallbackRequest, Engine, Go, On, Return, S, Step, Wait, Workflow
from workflows.testing import FakeClock

LEASE = timedelta(seconds=3)


class Decided(Workflow):
    """Approval-shaped: a deadline waits in a thread of its own, the main thread for the
    answer; once answered the workflow ends and the deadline's wait is torn down."""

    def definition(self) -> Any:
        return S(
            Go("watch deadline", Wait("deadline", On("timeout", Manual()))),
            Wait("decision", On("answer", Manual())),
            Return("done"),
        )


@dataclass
class HeldTeardown:
    """A wait manager whose first teardown of `held` waits until the test lets it go, as a
    teardown slowed down by a loaded machine or the outside world would."""

    held: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    teardowns: list[str] = field(default_factory=list)

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        return "posted"

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if request.name == self.held and not self.reached.is_set():
            self.reached.set()
            await self.released.wait()
        self.teardowns.append(request.name)


@pytest.fixture
async def two_processes(database_url: str) -> AsyncIterator[tuple[Engine, Engine, FakeClock]]:
    """Two engines on one database, as two processes would be, on one clock."""
    clock = FakeClock()
    manager = HeldTeardown(held="timeout")
    engines = [
        Engine(
            database_url,
            workflows=[Decided],
            callbacks={"manual": manager},
            clock=clock,
            lease=LEASE,
            worker_id=name,
        )
        for name in ("a", "b")
    ]
    for engine in engines:
        await engine.start()
    yield engines[0], engines[1], clock
    for engine in engines:
        await engine.close()


async def test_an_ended_workflow_a_sweep_claimed_keeps_no_lease(
    two_processes: tuple[Engine, Engine, FakeClock],
) -> None:
    a, b, clock = two_processes
    manager: HeldTeardown = a.callbacks["manual"]  # type: ignore[assignment]
    wid = await a.new_workflow(Decided())
    await a.execute(wid)
    await a.on_callback(await waiting_request(a, wid, "answer"), "yes")
    # A ends the workflow and tears its waits down; the deadline's teardown is slow.
    finishing = asyncio.create_task(a.execute(wid))
    await poll(manager.reached.is_set, 10, "the deadline's teardown never began")
    assert (await a.db.get(wid)).status == "finished"
    # Meanwhile A's lease runs out and B's sweep claims the workflow (its due time passed).
    clock.advance(LEASE + timedelta(seconds=1))
    now = clock.now()
    assert await b.db.claim_due(now, b.worker_id, now + LEASE, 10, b.workflows.keys()) == [wid]
    # A's teardown goes through and is recorded; the lease is B's now, so A leaves it
    # as B took it (renewing it is for its owner only).
    clock.advance(timedelta(seconds=1))
    manager.released.set()
    await finishing
    held = await a.db.get(wid)
    assert (held.lease_owner, held.lease_expires_at) == (b.worker_id, now + LEASE)
    # B runs what it claimed: nothing is left to do, and B gives the lease back.
    await b.execute(wid)
    record = await a.db.get(wid)
    assert record.status == "finished"
    assert record.state.orphans == []
    assert (record.lease_owner, record.lease_expires_at, record.due_at) == (None, None, None)
    assert manager.teardowns == ["answer", "timeout"]
    # No later sweep claims it again.
    clock.advance(2 * LEASE)
    now = clock.now()
    assert await b.db.claim_due(now, b.worker_id, now + LEASE, 10, b.workflows.keys()) == []


@dataclass
class Held:
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0


HELD = Held()


class Slow(Workflow):
    """One step that takes longer than the lease (a call waiting for its rate budget)."""

    def definition(self) -> Any:
        return S(Step("slow", self.slow), Return("done"))

    async def slow(self) -> None:
        HELD.runs += 1
        HELD.entered.set()
        await HELD.go.wait()


async def test_a_step_longer_than_the_lease_keeps_it(database_url: str) -> None:
    HELD.entered, HELD.go, HELD.runs = asyncio.Event(), asyncio.Event(), 0
    clock = FakeClock()
    lease = timedelta(seconds=0.3)  # renewed every 0.1 s of real time
    a, b = (
        Engine(database_url, workflows=[Slow], clock=clock, lease=lease, worker_id=name)
        for name in ("a", "b")
    )
    await a.start()
    await b.start()
    try:
        wid = await a.new_workflow(Slow())
        running = asyncio.create_task(a.execute(wid))
        await HELD.entered.wait()
        clock.advance(timedelta(seconds=5))  # long past the lease A took

        async def renewed() -> bool:
            expires = (await a.db.get(wid)).lease_expires_at
            return expires is not None and expires > clock.now()

        await poll(renewed, 10, "the lease was not renewed while the step ran")
        now = clock.now()
        assert await b.db.claim_due(now, b.worker_id, now + lease, 10, b.workflows.keys()) == []
        HELD.go.set()
        await running
        record = await a.db.get(wid)
        assert (record.status, record.output, HELD.runs) == ("finished", "done", 1)
        assert (record.lease_owner, record.lease_expires_at) == (None, None)
    finally:
        await a.close()
        await b.close()
