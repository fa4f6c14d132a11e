"""Engine verbs, errors and guarantees beyond single statements (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from callbacks import Timeout, default_callbacks
from tests.conftest import KitFactory
from tests.helpers import Manual, ManualManager, waiting_request
from workflows import (
    CallbackRequest,
    CorruptWorkflow,
    DefinitionError,
    Engine,
    For,
    Go,
    On,
    RetryLater,
    Return,
    S,
    StaleCallback,
    Step,
    StepFailed,
    UnknownWorkflowType,
    Wait,
    Workflow,
    WorkflowFinished,
    WorkflowNotFound,
)
from workflows.state import EventStatus
from workflows.store import SQLStore


class Approval(Workflow):
    """Approval-shaped: wait for a decision or a timeout."""

    decision: str = ""
    reminded: int = 0

    def definition(self) -> Any:
        return S(
            Wait(
                "decision",
                On("answer", Manual(self.decide), Step("record", lambda: None)),
                On(
                    "timeout",
                    Timeout(after=timedelta(hours=24)),
                    Return(TimeoutError("nobody answered")),
                ),
            ),
            Return(self.decision),
        )

    def decide(self, value: Any) -> None:
        self.decision = str(value)


async def test_timeout_fires_after_a_day_without_sleeping(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    await kit.advance(timedelta(hours=23, minutes=59))
    assert (await kit.engine.get(wid)).status == "waiting"
    await kit.advance(timedelta(minutes=1))
    info = await kit.engine.get(wid)
    assert (info.status, info.error) == ("failed", "nobody answered")
    assert await kit.engine.db.due_timers(kit.clock.now() + timedelta(days=9), 10) == []
    manager: ManualManager = kit.engine.callbacks["manual"]  # type: ignore[assignment]
    assert [(n, handled) for n, _, handled in manager.teardowns] == [("answer", False)]


async def test_answer_cancels_the_timer(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    assert len(await kit.engine.db.due_timers(kit.clock.now() + timedelta(days=2), 10)) == 1
    await kit.answer(wid, "answer", "yes")
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.output) == ("finished", "yes")
    assert await kit.engine.db.due_timers(kit.clock.now() + timedelta(days=2), 10) == []
    await kit.advance(timedelta(days=2))
    assert (await kit.engine.get(wid)).output == "yes"


class AnsweredOnce(Workflow):
    def definition(self) -> Any:
        return S(Wait("decision", On("answer", Manual())), Return("done"))


async def test_the_last_teardown_releases_in_its_own_write(make_kit: KitFactory) -> None:
    """A finished workflow's teardown record gives the lease back too: no write follows."""
    kit = await make_kit(AnsweredOnce)
    wid = await kit.engine.new_workflow(AnsweredOnce())
    await kit.drain()
    writes: list[str] = []
    db = kit.engine.db
    save, update = db.save, db.update

    async def saving(record: Any) -> bool:
        writes.append("save")
        return await save(record)

    async def updating(workflow_id: str, fn: Any) -> Any:
        writes.append("update")
        return await update(workflow_id, fn)

    db.save, db.update = saving, updating  # type: ignore[method-assign]
    await kit.answer(wid, "answer", "yes")
    await kit.drain()
    record = await db.get(wid)
    assert (record.status, record.lease_owner, record.due_at) == ("finished", None, None)
    assert record.state.orphans == []
    # The callback, the claim and the checkpoints, then the teardown's record, last.
    assert writes[-1] == "update", writes
    assert writes.count("update") == 2, writes


STORED: list[int] = []


class TwoStepsThenWait(Workflow):
    n: int = 0

    def definition(self) -> Any:
        return S(
            Step("first", self.first),
            Step("second", self.second),
            Wait("decision", On("answer", Manual())),
            Return(self.n),
        )

    def first(self) -> None:
        self.n += 1

    async def second(self) -> None:
        # What the store holds when the next step starts: the first step's checkpoint.
        STORED.append((await self.service(Engine).db.get(self.workflow_id)).data["n"])
        self.n += 1


async def test_a_step_is_checkpointed_before_the_next_runs_and_with_the_wait_after_it(
    make_kit: KitFactory,
) -> None:
    STORED.clear()
    kit = await make_kit(TwoStepsThenWait)
    kit.engine.services[Engine] = kit.engine
    saves: list[int] = []
    db = kit.engine.db
    save = db.save

    async def saving(record: Any) -> bool:
        saves.append(record.data["n"])
        return await save(record)

    db.save = saving  # type: ignore[method-assign]
    wid = await kit.engine.new_workflow(TwoStepsThenWait())
    await kit.drain()
    assert STORED == [1]
    record = await db.get(wid)
    assert (record.status, record.data["n"]) == ("waiting", 2)
    # The first step's checkpoint, written before the second ran, then the second's
    # together with the wait it reached (no write of its own in between).
    assert saves == [1, 2], saves
    await kit.answer(wid, "answer", None)
    await kit.drain()
    assert (await kit.engine.get(wid)).output == 2


async def test_an_answered_workflow_runs_on_from_the_record_the_answer_wrote(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit(AnsweredOnce)
    wid = await kit.engine.new_workflow(AnsweredOnce())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    reads: list[str] = []
    db = kit.engine.db
    get = db.get

    async def getting(workflow_id: str) -> Any:
        reads.append(workflow_id)
        return await get(workflow_id)

    db.get = getting  # type: ignore[method-assign]
    await kit.engine.on_callback(request, "yes")
    await kit.drain()
    assert reads == []  # the answer leased it; its execution starts from what it wrote
    assert (await kit.engine.get(wid)).status == "finished"


async def test_repeated_and_late_callbacks_change_nothing(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    timeout = await waiting_request(kit.engine, wid, "timeout")
    await kit.engine.on_callback(request, "yes")
    with pytest.raises(StaleCallback):
        await kit.engine.on_callback(request, "no")
    with pytest.raises(StaleCallback):
        await kit.engine.on_callback(timeout, None)
    await kit.drain()
    with pytest.raises(WorkflowFinished):
        await kit.engine.on_callback(request, "no")
    info = await kit.engine.get(wid)
    assert info.output == "yes"
    callbacks = [h for h in await kit.engine.history(wid) if h["kind"] == "callback"]
    assert [(h["name"], h["input"]) for h in callbacks] == [("answer", "yes")]


async def test_concurrent_callbacks_apply_exactly_once(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    results = await asyncio.gather(
        *(kit.engine.on_callback(request, f"answer {i}") for i in range(10)),
        return_exceptions=True,
    )
    applied = [r for r in results if not isinstance(r, BaseException)]
    assert len(applied) == 1
    assert all(isinstance(r, StaleCallback) for r in results if isinstance(r, BaseException))
    await kit.drain()
    assert (await kit.engine.get(wid)).output == applied[0]


async def test_callback_for_unknown_workflow(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    with pytest.raises(WorkflowNotFound):
        await kit.engine.on_callback(request.model_copy(update={"workflow_id": "nope"}), 1)


async def test_cancel_tears_down_every_open_wait(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    await kit.engine.cancel(wid, "no longer needed", actor="ops")
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.error) == ("cancelled", "no longer needed")
    assert info.state.orphans == []
    manager: ManualManager = kit.engine.callbacks["manual"]  # type: ignore[assignment]
    assert manager.teardowns == [("answer", request.pc, False)]
    assert await kit.engine.db.due_timers(kit.clock.now() + timedelta(days=2), 10) == []
    with pytest.raises(WorkflowFinished):
        await kit.engine.on_callback(request, "yes")
    with pytest.raises(WorkflowFinished):
        await kit.engine.cancel(wid)
    assert [h["kind"] for h in await kit.engine.history(wid)] == ["created", "cancelled"]


async def test_setup_and_teardown_errors_are_recorded_and_retried(make_kit: KitFactory) -> None:
    manager = ManualManager(fail_setups=2, fail_teardowns=1)
    kit = await make_kit(Approval, callbacks={**default_callbacks(), "manual": manager})
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    record = await kit.engine.db.get(wid)
    answer = next(e for e in record.state.threads[0].events if e.name == "answer")
    assert (answer.status, answer.error) == (
        EventStatus.SETUP_ERROR,
        "ConnectionError: setup failed",
    )
    assert record.due_at == answer.retry_at
    await kit.advance(kit.engine.retry_base)
    await kit.advance(kit.engine.retry_base * 2)
    request = await waiting_request(kit.engine, wid, "answer")
    assert manager.setups == [("answer", request.pc)]
    await kit.engine.on_callback(request, "ok")
    await kit.drain()
    record = await kit.engine.db.get(wid)
    assert record.status == "finished"
    (orphan,) = record.state.orphans
    assert (orphan.event.status, orphan.event.error) == (
        EventStatus.TEARDOWN_ERROR,
        "ConnectionError: teardown failed",
    )
    await kit.advance(kit.engine.retry_base)
    assert (await kit.engine.db.get(wid)).state.orphans == []
    assert manager.teardowns == [("answer", request.pc, True)]


class NotYet(ManualManager):
    """A teardown that must wait its turn (as for a rate budget) the first `later` times."""

    def __init__(self, later: int) -> None:
        super().__init__()
        self.later = later

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if self.later:
            self.later -= 1
            raise RetryLater(timedelta(seconds=30))
        await super().teardown(request, handler, handled)


async def test_a_teardown_told_to_retry_later_is_due_then_and_counts_no_failure(
    make_kit: KitFactory,
) -> None:
    manager = NotYet(later=2)
    kit = await make_kit(Approval, callbacks={**default_callbacks(), "manual": manager})
    wid = await kit.engine.new_workflow(Approval())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "answer")
    await kit.engine.on_callback(request, "ok")
    await kit.drain()
    record = await kit.engine.db.get(wid)
    (orphan,) = record.state.orphans
    assert (orphan.event.status, orphan.event.error, orphan.event.attempts) == (
        EventStatus.PENDING_TEARDOWN,
        "",
        0,
    )
    assert orphan.event.retry_at == record.due_at == kit.clock.now() + timedelta(seconds=30)
    await kit.advance(timedelta(seconds=29))
    assert manager.later == 1
    assert manager.teardowns == []
    await kit.advance(timedelta(seconds=1))
    assert manager.later == 0
    await kit.advance(timedelta(seconds=30))
    assert manager.teardowns == [("answer", request.pc, True)]
    assert (await kit.engine.db.get(wid)).state.orphans == []


PUT_OFF = {"left": 0}


class Refresher(Workflow):
    """A background thread whose step is put off twice (its budget), beside a main thread
    that must not wait for it."""

    refreshed: int = 0
    touched: int = 0
    told: bool = False

    def definition(self) -> Any:
        return S(
            Go("refresher", Step("refresh", self.refresh)),
            Wait("hold", On("answer", Manual(lambda value: None), Step("tell", self.tell))),
            Wait("after", On("done", Manual(lambda value: None))),
        )

    def refresh(self) -> None:
        self.touched += 1  # a change of a step put off must not be kept
        if PUT_OFF["left"]:
            PUT_OFF["left"] -= 1
            raise RetryLater(timedelta(seconds=30))
        self.refreshed += 1

    def tell(self) -> None:
        self.told = True


async def test_a_step_put_off_holds_back_only_its_own_thread(make_kit: KitFactory) -> None:
    PUT_OFF["left"] = 2
    kit = await make_kit(Refresher)
    wid = await kit.engine.new_workflow(Refresher())
    await kit.drain()
    record = await kit.engine.db.get(wid)
    assert (record.attempts, record.error) == (0, None)
    (refresh,) = [t for t in record.state.threads if t.id != "main"]
    assert refresh.due_at == record.due_at == kit.clock.now() + timedelta(seconds=30)
    await kit.engine.on_callback(await waiting_request(kit.engine, wid, "answer"), "ok")
    await kit.drain()
    data = (await kit.engine.db.get(wid)).data
    assert (data["told"], data["refreshed"], data["touched"]) == (True, 0, 0)
    assert await waiting_request(kit.engine, wid, "done")  # main went on to its next wait
    await kit.advance(timedelta(seconds=29))
    assert (await kit.engine.db.get(wid)).data["refreshed"] == 0
    await kit.advance(timedelta(seconds=1))  # due: put off once more
    await kit.advance(timedelta(seconds=30))
    record = await kit.engine.db.get(wid)
    assert (record.data["refreshed"], record.data["touched"]) == (1, 1)
    assert [t.id for t in record.state.threads] == ["main"]
    assert (record.attempts, record.error, record.due_at) == (0, None, None)


class BadLoop(Workflow):
    def definition(self) -> Any:
        return For("spin", True, Return())


class Duplicate(Workflow):
    def definition(self) -> Any:
        return S(Step("a", lambda: None), Step("a", lambda: None))


class NoManagerFor(Workflow):
    def definition(self) -> Any:
        return Wait("w", On("e", Timeout(after=timedelta(seconds=1))))


async def test_invalid_definitions_are_refused_before_anything_runs(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit(BadLoop, Duplicate, NoManagerFor, callbacks={"manual": ManualManager()})
    with pytest.raises(DefinitionError, match="loop 'spin' has no Step, Wait or WaitFor"):
        await kit.engine.new_workflow(BadLoop())
    with pytest.raises(DefinitionError, match="duplicate statement name 'a'"):
        await kit.engine.new_workflow(Duplicate())
    with pytest.raises(DefinitionError, match="no callback manager for handler type 'timeout'"):
        await kit.engine.new_workflow(NoManagerFor())
    assert await kit.engine.db.due(kit.clock.now(), 10, kit.engine.workflows.keys()) == []


class GoBodies(Workflow):
    """Its thread's body is a function of the thread id: checked once it is called."""

    problem: str = ""

    def definition(self) -> Any:
        return S(
            Step("a", lambda: None),
            Go("helper", self.helper, id="helper-1"),
            Wait("hold", On("go", Manual())),
        )

    def helper(self, thread_id: str) -> Any:
        if self.problem == "no manager":
            return Wait("pause", On(f"timeout {thread_id}", Timeout(after=timedelta(seconds=1))))
        if self.problem == "duplicate":
            return S(Step("a", lambda: None))
        if self.problem == "not a statement":
            return "a step"
        if self.problem == "raises":
            raise KeyError(thread_id)
        return Step(f"work {thread_id}", lambda: None)


@pytest.mark.parametrize(
    ("problem", "error"),
    [
        ("no manager", "event 'timeout helper-1': no callback manager for handler type 'timeout'"),
        ("duplicate", "duplicate statement name 'a'"),
        ("not a statement", "Go 'helper': the function must return a statement"),
        ("raises", "Go 'helper': building the body of thread 'helper-1' raised KeyError"),
    ],
)
async def test_go_bodies_are_checked_before_anything_runs(
    make_kit: KitFactory, problem: str, error: str
) -> None:
    kit = await make_kit(GoBodies, callbacks={"manual": ManualManager()})
    with pytest.raises(DefinitionError, match=error):
        await kit.engine.new_workflow(GoBodies(problem=problem))
    assert await kit.engine.db.list_workflows() == []
    wid = await kit.engine.new_workflow(GoBodies())  # the same with a sound body runs
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, [t.id for t in info.state.threads]) == ("waiting", ["main"])


class NotAStatement(Workflow):
    def definition(self) -> Any:
        return S(Step("a", lambda: None), "b")  # type: ignore[arg-type]


class NotATree(Workflow):
    def definition(self) -> Any:
        return [Step("a", lambda: None)]


class BreaksLater(Workflow):
    """Its tree holds something other than a statement only once its data says so."""

    broken: bool = False

    def definition(self) -> Any:
        later = [{"not": "a statement"}] if self.broken else []
        return S(Step("break", self.brk), *later, Wait("hold", On("go", Manual())))

    def brk(self) -> None:
        self.broken = True


async def test_what_is_not_a_statement_is_named(make_kit: KitFactory) -> None:
    kit = await make_kit(
        NotAStatement, NotATree, BreaksLater, callbacks={"manual": ManualManager()}
    )
    with pytest.raises(DefinitionError, match="expected statements, got 'b'"):
        await kit.engine.new_workflow(NotAStatement())
    with pytest.raises(DefinitionError, match="definition\\(\\) must return a statement"):
        await kit.engine.new_workflow(NotATree())
    # Found by the walk at run time: the workflow fails with the same clear error.
    wid = await kit.engine.new_workflow(BreaksLater())
    await kit.drain()
    record = await kit.engine.db.get(wid)
    assert record.status == "failed"
    assert record.error == "DefinitionError: expected statements, got {'not': 'a statement'}"


async def test_unknown_workflow_type(make_kit: KitFactory) -> None:
    kit = await make_kit(Approval)
    with pytest.raises(UnknownWorkflowType, match="'BadLoop' is not registered"):
        await kit.engine.new_workflow(BadLoop())


class Counter(Workflow):
    n: int = 0

    def definition(self) -> Any:
        return S(Step("inc", self.inc), Wait("hold", On("go", Manual())), Return(self.n))

    def inc(self) -> None:
        self.n += 1


async def test_corrupt_row_fails_that_workflow_only(make_kit: KitFactory) -> None:
    kit = await make_kit(Counter)
    bad = await kit.engine.new_workflow(Counter())
    good = await kit.engine.new_workflow(Counter())
    await kit.drain()  # both wait
    store = kit.engine.db
    assert isinstance(store, SQLStore)
    from workflows.tables import W

    async with store.engine.begin() as conn:
        await conn.execute(W.update().where(W.c.id == bad).values(data={"n": "not a number"}))
    await kit.engine.execute(bad)
    with pytest.raises(CorruptWorkflow, match="stored data is invalid"):
        await kit.engine.get(bad)
    record = await store.get(bad)
    assert record.status == "failed"
    assert "stored data is invalid" in (record.error or "")
    assert (await kit.engine.get(good)).status == "waiting"

    # Broken execution state: failed with a clear error, without parsing it.
    async with store.engine.begin() as conn:
        await conn.execute(W.update().where(W.c.id == good).values(state={"threads": 5}))
    await kit.engine.execute(good)
    async with store.engine.connect() as conn:
        status, error = (
            await conn.execute(sa.select(W.c.status, W.c.error).where(W.c.id == good))
        ).one()
    assert status == "failed"
    assert "execution state is invalid" in error


class Spawner(Workflow):
    def definition(self) -> Any:
        return S(
            Go("a", Wait("w", On("e", Manual())), id="same"),
            Go("b", Step("s", lambda: None), id="same"),
        )


async def test_duplicate_thread_id_fails_the_workflow(make_kit: KitFactory) -> None:
    kit = await make_kit(Spawner)
    wid = await kit.engine.new_workflow(Spawner())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert "thread 'same' is already running" in (info.error or "")


class Refused(Workflow):
    """A step whose failure no retry can mend, then one that must never run."""

    after: bool = False

    def definition(self) -> Any:
        return S(Step("refuse", self.refuse), Step("after", self.mark_after))

    def refuse(self) -> None:
        raise StepFailed("the other side said never")

    def mark_after(self) -> None:
        self.after = True


async def test_a_step_that_raises_step_failed_fails_the_workflow_at_once(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit(Refused, max_attempts=5)
    wid = await kit.engine.new_workflow(Refused())
    await kit.drain()
    await kit.advance(kit.engine.retry_max)
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert info.error == "step after 'start' failed: StepFailed: the other side said never"
    assert info.attempts == 1
    assert isinstance(info.data, Refused)
    assert not info.data.after
