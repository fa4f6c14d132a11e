"""The statements' behaviour, ported from gorchestrate's own test suite, on real SQLite
and PostgreSQL (every test runs on both)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import KitFactory
from tests.helpers import Manual, ManualManager, waiting_request
from workflows import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    Return,
    S,
    StaleCallback,
    Step,
    Switch,
    Wait,
    WaitFor,
    Workflow,
)
from workflows.state import EventStatus, ThreadStatus


@pytest.fixture
def kit_url(every_store_url: str) -> str:
    """Statements behave the same on the shipped in-memory store and on both databases."""
    return every_store_url


class Empty(Workflow):
    def definition(self) -> Any:
        return S()


async def test_empty_workflow_finishes(make_kit: KitFactory) -> None:
    kit = await make_kit(Empty)
    wid = await kit.engine.new_workflow(Empty())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "finished"
    assert info.output is None


class OneStep(Workflow):
    err: str = ""
    calls: int = 0

    def definition(self) -> Any:
        return S(Step("step1", self.step1))

    def step1(self) -> None:
        self.calls += 1
        if self.err:
            raise RuntimeError(self.err)
        self.err = "updated"


async def test_step_updates_data(make_kit: KitFactory) -> None:
    kit = await make_kit(OneStep)
    wid = await kit.engine.new_workflow(OneStep())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "finished"
    assert info.data.err == "updated"  # type: ignore[attr-defined]


async def test_failing_step_is_retried_with_backoff_then_fails(make_kit: KitFactory) -> None:
    kit = await make_kit(OneStep, max_attempts=3)
    wid = await kit.engine.new_workflow(OneStep(err="err1"))
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.attempts) == ("running", 1)
    assert info.error == "RuntimeError: err1"
    assert info.due_at == kit.clock.now() + kit.engine.retry_base
    await kit.advance(kit.engine.retry_base)  # second attempt after 1 s
    assert (await kit.engine.get(wid)).attempts == 2
    await kit.advance(kit.engine.retry_base)  # backoff doubled: not yet due
    assert (await kit.engine.get(wid)).attempts == 2
    await kit.advance(kit.engine.retry_base)
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert "failed 3 times: RuntimeError: err1" in (info.error or "")


class Handler(Workflow):
    log: str = ""

    def definition(self) -> Any:
        return S(
            Step("start", self.start),
            Wait("wait", On("event", Manual(self.sync), Step("after handler", self.after))),
        )

    def start(self) -> None:
        self.log += "start"

    def sync(self, input: Any) -> None:
        self.log += ",sync"

    def after(self) -> None:
        self.log += ",async"


async def test_handler_setup_teardown_with_handled_flag(make_kit: KitFactory) -> None:
    kit = await make_kit(Handler)
    manager: ManualManager = kit.engine.callbacks["manual"]  # type: ignore[assignment]
    wid = await kit.engine.new_workflow(Handler())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "waiting"
    (thread,) = info.state.threads
    assert (thread.step, thread.status) == ("wait", ThreadStatus.BLOCKED)
    (event,) = thread.events
    assert (event.name, event.status, event.error) == ("event", EventStatus.SETUP, "")
    assert event.setup_data == f'{{"posted": "event:{event.pc}"}}'

    before = await kit.engine.db.get(wid)
    await kit.drain()  # resuming a waiting workflow changes nothing
    assert (await kit.engine.db.get(wid)).version == before.version

    assert await kit.answer(wid, "event", "abc") == "abc"
    assert (await kit.engine.get(wid)).data.log == "start,sync"  # type: ignore[attr-defined]
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.data.log == "start,sync,async"  # type: ignore[attr-defined]
    assert info.status == "finished"
    assert manager.setups == [("event", event.pc)]
    assert manager.teardowns == [("event", event.pc, True)]
    assert info.state.threads[0].events == []
    assert info.state.orphans == []


async def test_callback_for_an_unknown_event_is_stale(make_kit: KitFactory) -> None:
    kit = await make_kit(Handler)
    wid = await kit.engine.new_workflow(Handler())
    await kit.drain()
    request = await waiting_request(kit.engine, wid, "event")
    before = await kit.engine.db.get(wid)
    with pytest.raises(StaleCallback, match="stale"):
        await kit.engine.on_callback(request.model_copy(update={"name": "blabla"}), None)
    with pytest.raises(StaleCallback):  # program counter mismatch
        await kit.engine.on_callback(request.model_copy(update={"pc": request.pc + 1}), None)
    after = await kit.engine.db.get(wid)
    assert (after.version, after.data) == (before.version, before.data)


class Loop(Workflow):
    i: int = 0
    log: str = ""

    def definition(self) -> Any:
        return S(
            For("count to 5", self.i < 5, Step("step1", self.step1)),
            Step("reset i", self.reset),
            For(
                "wait twice",
                self.i < 2,
                Wait(
                    "wait in loop for event",
                    On("event", Manual(self.handled), Step("step2", self.step2)),
                ),
            ),
        )

    def step1(self) -> None:
        self.i += 1
        self.log += "l"

    def reset(self) -> None:
        self.i = 0

    def handled(self, input: Any) -> None:
        self.log += "h"
        self.i += 1

    def step2(self) -> None:
        self.log += "a"


class BreakLoop(Loop):
    def definition(self) -> Any:
        return S(
            For("forever", True, Step("step1", self.step1), If(self.i >= 5, Break())),
            Step("reset i", self.reset),
            For(
                "wait twice",
                self.i < 2,
                Wait(
                    "wait in loop for event",
                    On("event", Manual(self.handled), Step("step2", self.step2)),
                ),
            ),
        )


@pytest.mark.parametrize("cls", [Loop, BreakLoop])
async def test_loops_and_break(make_kit: KitFactory, cls: type[Loop]) -> None:
    kit = await make_kit(cls)
    manager: ManualManager = kit.engine.callbacks["manual"]  # type: ignore[assignment]
    wid = await kit.engine.new_workflow(cls())
    await kit.drain()
    assert (await kit.engine.get(wid)).data.log == "lllll"  # type: ignore[attr-defined]
    first = await waiting_request(kit.engine, wid, "event")
    await kit.engine.on_callback(first, None)
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.data.log == "lllllha"  # type: ignore[attr-defined]
    assert info.status == "waiting"
    second = await waiting_request(kit.engine, wid, "event")
    assert second.pc > first.pc  # the same Wait again, a new wait
    with pytest.raises(StaleCallback):
        await kit.engine.on_callback(first, None)
    await kit.engine.on_callback(second, None)
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.data.log == "lllllhaha"  # type: ignore[attr-defined]
    assert info.status == "finished"
    assert manager.teardowns == [("event", first.pc, True), ("event", second.pc, True)]


class Skip(Workflow):
    i: int = 0
    log: str = ""

    def definition(self) -> Any:
        return S(
            For(
                "odd only",
                self.i < 6,
                Step("inc", self.inc),
                If(self.i % 2 == 0, Continue()),
                Step("log", self.write),
            ),
        )

    def inc(self) -> None:
        self.i += 1

    def write(self) -> None:
        self.log += str(self.i)


async def test_continue_skips_the_rest_of_the_iteration(make_kit: KitFactory) -> None:
    kit = await make_kit(Skip)
    wid = await kit.engine.new_workflow(Skip())
    await kit.drain()
    assert (await kit.engine.get(wid)).data.log == "135"  # type: ignore[attr-defined]


class IfElse(Workflow):
    s: str = ""

    def definition(self) -> Any:
        return S(
            If(self.s == "", Step("set to b", lambda: self.set("b")))
            .ElseIf(self.s == "c", Return())
            .Else(Step("duplicate", lambda: self.set(self.s + self.s)), Return()),
            Switch(
                Case(self.s == "a", Step("add a", lambda: self.set(self.s + "a"))),
                Case(
                    self.s == "b",
                    S(
                        Step("add b", lambda: self.set(self.s + "b")),
                        Wait("wait after b", On("event", Manual(lambda _: self.set(self.s + "h")))),
                    ),
                ),
                Default(Return("default")),
            ),
        )

    def set(self, value: str) -> None:
        self.s = value


async def test_if_elseif_else_and_switch(make_kit: KitFactory) -> None:
    kit = await make_kit(IfElse)
    a = await kit.engine.new_workflow(IfElse(s="a"))
    b = await kit.engine.new_workflow(IfElse(s=""))
    c = await kit.engine.new_workflow(IfElse(s="c"))
    await kit.drain()
    info = await kit.engine.get(a)
    assert (info.status, info.data.s) == ("finished", "aa")  # type: ignore[attr-defined]
    info = await kit.engine.get(c)
    assert (info.status, info.data.s) == ("finished", "c")  # type: ignore[attr-defined]
    info = await kit.engine.get(b)
    assert (info.status, info.data.s) == ("waiting", "bb")  # type: ignore[attr-defined]
    await kit.answer(b, "event")
    await kit.drain()
    info = await kit.engine.get(b)
    assert (info.status, info.data.s) == ("finished", "bbh")  # type: ignore[attr-defined]


class SwitchDefault(IfElse):
    def definition(self) -> Any:
        return Switch(Case(self.s == "x", Return("x")), Default(Return(f"default {self.s}")))


async def test_switch_default_returns_its_value(make_kit: KitFactory) -> None:
    kit = await make_kit(SwitchDefault)
    wid = await kit.engine.new_workflow(SwitchDefault(s="q"))
    await kit.drain()
    assert (await kit.engine.get(wid)).output == "default q"


class GoJoin(Workflow):
    i: int = 0
    wg: int = 0
    log: str = ""

    def definition(self) -> Any:
        return S(
            For(
                "start threads",
                self.i < 5,
                Step("inc", self.inc),
                Go("parallel", Step("log", self.log_it), id=f"worker-{self.i}"),
            ),
            WaitFor("all threads done", self.wg == 0),
            Step("done", self.done),
        )

    def inc(self) -> None:
        self.i += 1
        self.wg += 1

    def log_it(self) -> None:
        self.log += "a"
        self.wg -= 1

    def done(self) -> None:
        self.log += "_done"


async def test_threads_started_in_a_loop_joined_with_waitfor(make_kit: KitFactory) -> None:
    kit = await make_kit(GoJoin)
    wid = await kit.engine.new_workflow(GoJoin())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.data.log == "aaaaa_done"  # type: ignore[attr-defined]
    assert info.status == "finished"


class GoWait(Workflow):
    """Threads that each wait for their own event, joined by WaitFor."""

    answers: dict[str, Any] = {}

    def definition(self) -> Any:
        return S(
            Go("ask alice", self.ask, id="ask-alice"),
            Go("ask bob", self.ask, id="ask-bob"),
            WaitFor("both answered", len(self.answers) == 2),
            Return(dict(sorted(self.answers.items()))),
        )

    def ask(self, thread_id: str) -> Any:
        who = thread_id.removeprefix("ask-")
        return Wait(
            f"wait {who}", On(f"answer {who}", Manual(lambda v: self.answers.__setitem__(who, v)))
        )


async def test_threads_with_their_own_waits(make_kit: KitFactory) -> None:
    kit = await make_kit(GoWait)
    wid = await kit.engine.new_workflow(GoWait())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "waiting"
    assert {t.id for t in info.state.threads} == {"main", "ask-alice", "ask-bob"}
    assert await kit.waiting(wid) == ["answer alice", "answer bob"]
    await kit.answer(wid, "answer bob", "yes")
    await kit.drain()
    assert (await kit.engine.get(wid)).status == "waiting"
    await kit.answer(wid, "answer alice", "no")
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.output) == ("finished", {"alice": "no", "bob": "yes"})


class Sub(Workflow):
    log: str = ""

    def definition(self) -> Any:
        return S(Step("step1", lambda: self.add("1")), self.sub1("sub1_"), self.sub1("sub1,2_"))

    def sub1(self, prefix: str) -> Any:
        return S(
            Step(prefix + "_step2", lambda: self.add("2")),
            self.sub2(prefix + "_sub2,1_"),
            self.sub2(prefix + "_sub2,2_"),
        )

    def sub2(self, prefix: str) -> Any:
        return S(Step(prefix + "_step3", lambda: self.add("3")))

    def add(self, s: str) -> None:
        self.log += s


async def test_reusable_sub_sections(make_kit: KitFactory) -> None:
    kit = await make_kit(Sub)
    wid = await kit.engine.new_workflow(Sub())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.data.log) == ("finished", "1233233")  # type: ignore[attr-defined]


class AsyncSteps(Workflow):
    log: list[str] = []

    def definition(self) -> Any:
        return S(
            Step("a", self.a),
            Step("b", lambda: self.log.append("b")),
            Return(PermissionError("denied by policy")),
        )

    async def a(self) -> None:
        self.log.append("a")


async def test_async_steps_and_returning_an_exception_fails(make_kit: KitFactory) -> None:
    kit = await make_kit(AsyncSteps)
    wid = await kit.engine.new_workflow(AsyncSteps())
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.data.log == ["a", "b"]  # type: ignore[attr-defined]
    assert (info.status, info.error) == ("failed", "denied by policy")
