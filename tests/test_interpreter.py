"""The interpreter alone: gorchestrate's Resume and HandleCallback on a workflow and its
execution state, nothing stored (the engine's tests cover it with a database around it)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Manual
from tests.test_statements import GoJoin
from workflows import (
    CallbackRequest,
    For,
    NoManager,
    On,
    Return,
    S,
    StaleCallback,
    Step,
    Wait,
    Workflow,
)
from workflows.interpreter import Ended, Interpreter
from workflows.state import EventStatus, State, ThreadStatus


class Loop(Workflow):
    """gorchestrate's loop workflow, as the engine benchmark runs it."""

    i: int = 0
    log: str = ""

    def definition(self) -> Any:
        return S(
            For("count", self.i < 3, Step("step1", self.step1)),
            Step("reset i", self.reset),
            For(
                "wait twice",
                self.i < 2,
                Wait("wait", On("event", Manual(self.handled), Step("step2", self.step2))),
            ),
            Return(self.log),
        )

    def step1(self) -> None:
        self.i += 1
        self.log += "l"

    def reset(self) -> None:
        self.i = 0

    def handled(self, _: Any) -> None:
        self.log += "h"
        self.i += 1

    def step2(self) -> None:
        self.log += "a"


class Checkpoints:
    """Counts checkpoints and copies the state at each, as a store would save it."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.saved: list[dict[str, Any]] = []

    async def __call__(self) -> None:
        self.saved.append(self.state.to_data())


def request(state: State, name: str = "event") -> CallbackRequest:
    event = state.threads[0].events[0]
    return CallbackRequest(workflow_id="w", thread_id="main", name=name, pc=event.pc)


async def test_resume_runs_until_the_wait_checkpointing_every_step() -> None:
    interpreter, wf, state = Interpreter({"manual"}), Loop(), State()
    checkpoints = Checkpoints(state)
    assert await interpreter.resume(wf, state, checkpoints) is None
    assert wf.log == "lll"
    # three step1, the reset, then the walk that blocked (it creates the wait event)
    assert len(checkpoints.saved) == 5
    assert [t["step"] for t in checkpoints.saved[0]["threads"]] == ["step1"]
    thread = state.threads[0]
    assert (thread.step, thread.status) == ("wait", ThreadStatus.BLOCKED)
    assert [(e.name, e.pc, e.status) for e in thread.events] == [
        ("event", 1, EventStatus.PENDING_SETUP)
    ]


async def test_callbacks_answer_the_current_wait_once_and_the_workflow_ends() -> None:
    interpreter, wf, state = Interpreter({"manual"}), Loop(), State()
    checkpoints = Checkpoints(state)
    await interpreter.resume(wf, state, checkpoints)
    first = request(state)
    assert await interpreter.handle_callback(wf, state, first, "yes") == "yes"
    assert state.threads[0].events[0].handled
    assert await interpreter.resume(wf, state, checkpoints) is None  # blocked again
    before = state.to_data()
    with pytest.raises(StaleCallback):
        await interpreter.handle_callback(wf, state, first, "again")
    assert state.to_data() == before
    assert wf.log == "lllha"
    await interpreter.handle_callback(wf, state, request(state), None)
    assert await interpreter.resume(wf, state, checkpoints) == Ended(output="lllhaha")
    # both waits' events are owed a teardown (a store-less run never does them)
    assert [(o.event.pc, o.event.status) for o in state.orphans] == [
        (1, EventStatus.PENDING_TEARDOWN),
        (3, EventStatus.PENDING_TEARDOWN),  # each answer bumps pc too
    ]


async def test_a_failing_step_propagates_without_moving_the_thread() -> None:
    class Fails(Workflow):
        def definition(self) -> Any:
            return S(Step("ok", lambda: None), Step("boom", self.boom))

        def boom(self) -> None:
            raise RuntimeError("boom")

    interpreter, state = Interpreter(set()), State()
    checkpoints = Checkpoints(state)
    with pytest.raises(RuntimeError, match="boom"):
        await interpreter.resume(Fails(), state, checkpoints)
    assert len(checkpoints.saved) == 1
    assert state.threads[0].step == "ok"


async def test_threads_join_with_waitfor_rechecked_after_steps() -> None:
    interpreter, wf, state = Interpreter(set()), GoJoin(), State()
    assert await interpreter.resume(wf, state, Checkpoints(state)) == Ended()
    assert wf.log == "aaaaa_done"


async def test_a_wait_on_an_event_without_a_manager_is_refused() -> None:
    with pytest.raises(NoManager, match="manual"):
        await Interpreter({"other"}).resume(Loop(i=3), State(), Checkpoints(State()))


async def test_returning_an_exception_ends_as_failed() -> None:
    class Refuses(Workflow):
        def definition(self) -> Any:
            return Return(PermissionError("denied"))

    ended = await Interpreter(set()).resume(Refuses(), State(), Checkpoints(State()))
    assert ended == Ended(error="denied")
