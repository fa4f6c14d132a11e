"""The test kit's own verbs, as a workflow author uses them (SQLite, PostgreSQL and the
in-memory store): answering an open wait by its event name, the waits open now, the data
read back as its model, and the workflow's own clock agreeing with the kit's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callbacks import Timeout
from tests.conftest import KitFactory
from tests.helpers import Manual
from workflows import For, Go, On, Return, S, Step, Wait, WaitFor, Workflow


@pytest.fixture
def kit_url(every_store_url: str) -> str:
    return every_store_url


class Stamped(Workflow):
    """Keeps its own timestamps, as a request keeps when it was made and decided."""

    started_at: datetime | None = None
    resumed_at: datetime | None = None

    def definition(self) -> Any:
        return S(
            Step("start", self.start),
            Wait("pause", On("timeout", Timeout(after=timedelta(hours=2)))),
            Step("resume", self.resume),
        )

    def start(self) -> None:
        self.started_at = self.now()

    def resume(self) -> None:
        self.resumed_at = self.now()


async def test_a_workflows_clock_is_the_engines(make_kit: KitFactory) -> None:
    kit = await make_kit(Stamped)
    wid = await kit.engine.new_workflow(Stamped())
    await kit.drain()
    started = kit.clock.now()
    assert started.year == 2030  # the kit's fake clock, not the system's
    assert (await kit.data(wid, Stamped)).started_at == started
    await kit.advance(timedelta(hours=2))
    data = await kit.data(wid, Stamped)
    assert data.resumed_at == started + timedelta(hours=2)
    assert (await kit.engine.get(wid)).status == "finished"


def test_outside_an_engine_a_workflows_clock_is_the_systems() -> None:
    before = datetime.now(UTC)
    now = Stamped().now()
    assert before <= now <= datetime.now(UTC)
    assert now.tzinfo is UTC


class Panel(Workflow):
    """Asks a panel: one Go starts a thread per member, each waiting for `answer`, while
    the main thread waits for `decide`."""

    members: int = 2
    asked: int = 0
    decision: str = ""
    answers: dict[str, str] = {}

    def definition(self) -> Any:
        return S(
            For(
                "ask all",
                self.asked < self.members,
                Go("ask", self.ask, id=f"ask-{self.asked}"),
                Step("asked", self.next),
            ),
            Wait("decision", On("decide", Manual(self.decide))),
            WaitFor("all answered", len(self.answers) == self.members),
            Return({"decision": self.decision, **self.answers}),
        )

    def ask(self, thread_id: str) -> Any:
        return Wait("wait", On("answer", Manual(lambda v: self.answers.update({thread_id: v}))))

    def next(self) -> None:
        self.asked += 1

    def decide(self, value: Any) -> None:
        self.decision = str(value)


async def test_a_wait_is_answered_by_its_event_name(make_kit: KitFactory) -> None:
    kit = await make_kit(Panel)
    wid = await kit.engine.new_workflow(Panel())
    await kit.drain()
    assert await kit.waiting(wid) == ["decide", "answer", "answer"]
    with pytest.raises(
        LookupError,
        match=f"threads ask-0, ask-1 of workflow {wid} all wait for 'answer': say which",
    ):
        await kit.answer(wid, "answer", "no")
    assert await kit.answer(wid, "answer", "yes", thread="ask-1") == "yes"
    assert await kit.waiting(wid) == ["decide", "answer"]
    with pytest.raises(
        LookupError,
        match=r"does not wait for 'answer' in thread 'ask-1'; it waits for 'decide' \(main\), "
        r"'answer' \(ask-0\)",
    ):
        await kit.answer(wid, "answer", "again", thread="ask-1")
    await kit.answer(wid, "answer", "no")  # only one thread waits for it now
    await kit.answer(wid, "decide", "go", actor="U1")
    await kit.drain()
    info = await kit.engine.get(wid)
    assert (info.status, info.output) == (
        "finished",
        {"decision": "go", "ask-0": "no", "ask-1": "yes"},
    )
    assert await kit.waiting(wid) == []
    with pytest.raises(LookupError, match="does not wait for 'decide'; it waits for nothing"):
        await kit.answer(wid, "decide", "again")
    callbacks = [h for h in await kit.engine.history(wid) if h["kind"] == "callback"]
    assert [(h["name"], h["thread_id"], h["actor"]) for h in callbacks] == [
        ("answer", "ask-1", ""),
        ("answer", "ask-0", ""),
        ("decide", "main", "U1"),
    ]


async def test_data_comes_back_as_its_model(make_kit: KitFactory) -> None:
    kit = await make_kit(Panel, Stamped)
    wid = await kit.engine.new_workflow(Panel(members=1))
    await kit.drain()
    await kit.answer(wid, "answer", "yes")
    await kit.drain()
    panel = await kit.data(wid, Panel)
    assert (panel.asked, panel.answers) == (1, {"ask-0": "yes"})
    with pytest.raises(TypeError, match=f"workflow {wid} is a Panel, not a Stamped"):
        await kit.data(wid, Stamped)
