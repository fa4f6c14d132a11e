"""New code under running workflows: positions are statement names, so statements that are
not in flight can be added, edited and reordered; a workflow whose in-flight statement was
removed fails with a clear error and can be repaired and retried."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tests.conftest import KitFactory
from tests.helpers import Manual, waiting_request
from workflows import On, S, StatementNotFound, Step, Wait, Workflow


class V1(Workflow):
    workflow_type: ClassVar[str] = "Release"
    log: list[str] = []

    def definition(self) -> Any:
        return S(
            Step("build", lambda: self.log.append("build")),
            Wait("approval", On("approved", Manual())),
            Step("deploy", lambda: self.log.append("deploy")),
            Step("announce", lambda: self.log.append("announce")),
        )


class V2Added(V1):
    workflow_type = "Release"

    def definition(self) -> Any:
        return S(
            Step("build", lambda: self.log.append("build")),
            Step("scan", lambda: self.log.append("scan")),  # before the wait: never runs
            Wait("approval", On("approved", Manual())),
            Step("backup", lambda: self.log.append("backup")),  # after the wait: runs
            Step("deploy", lambda: self.log.append("deploy v2")),  # edited
            Step("announce", lambda: self.log.append("announce")),
        )


class V2Reordered(V1):
    workflow_type = "Release"

    def definition(self) -> Any:
        return S(
            Wait("approval", On("approved", Manual())),
            Step("announce", lambda: self.log.append("announce")),
            Step("deploy", lambda: self.log.append("deploy")),
            Step("build", lambda: self.log.append("build")),
        )


class V2Removed(V1):
    workflow_type = "Release"

    def definition(self) -> Any:
        return S(
            Step("build", lambda: self.log.append("build")),
            Step("deploy", lambda: self.log.append("deploy")),
            Step("announce", lambda: self.log.append("announce")),
        )


class V2WaitRenamed(V1):
    workflow_type = "Release"

    def definition(self) -> Any:
        return S(
            Step("build", lambda: self.log.append("build")),
            Wait("sign-off", On("approved", Manual())),  # the wait in flight, renamed
            Step("deploy", lambda: self.log.append("deploy")),
            Step("announce", lambda: self.log.append("announce")),
        )


async def _waiting_on_v1(make_kit: KitFactory) -> tuple[str, Any]:
    old = await make_kit(V1)
    wid = await old.engine.new_workflow(V1())
    await old.drain()
    return wid, await waiting_request(old.engine, wid, "approved")


@pytest.mark.parametrize(
    ("new_code", "expected"),
    [
        (V2Added, ["build", "backup", "deploy v2", "announce"]),
        (V2Reordered, ["build", "announce", "deploy", "build"]),
    ],
)
async def test_statements_not_in_flight_can_change(
    make_kit: KitFactory, new_code: type[V1], expected: list[str]
) -> None:
    wid, request = await _waiting_on_v1(make_kit)
    new = await make_kit(new_code)  # a new release of the code, same database
    await new.engine.on_callback(request, None)
    await new.drain()
    info = await new.engine.get(wid)
    assert info.status == "finished"
    assert info.data.log == expected  # type: ignore[attr-defined]


async def test_a_renamed_wait_in_flight_still_takes_its_event(make_kit: KitFactory) -> None:
    wid, request = await _waiting_on_v1(make_kit)
    new = await make_kit(V2WaitRenamed)
    await new.engine.on_callback(request, None)  # the event is found by its own name
    await new.drain()
    info = await new.engine.get(wid)
    assert info.status == "finished"
    assert info.data.log == ["build", "deploy", "announce"]  # type: ignore[attr-defined]


async def test_removed_wait_fails_clearly_then_repair_and_retry(make_kit: KitFactory) -> None:
    wid, request = await _waiting_on_v1(make_kit)
    new = await make_kit(V2Removed)
    with pytest.raises(StatementNotFound, match="'approved' no longer exists"):
        await new.engine.on_callback(request, None)
    await new.drain()
    info = await new.engine.get(wid)
    assert info.status == "failed"
    assert "'approved' no longer exists in Release's definition" in (info.error or "")

    with pytest.raises(StatementNotFound, match="no statement 'approval'"):
        await new.engine.goto(wid, "approval")
    await new.engine.set_data(wid, {"log": ["build", "repaired"]}, actor="ops")
    await new.engine.goto(wid, "deploy", actor="ops")
    await new.engine.retry(wid, actor="ops")
    await new.drain()
    info = await new.engine.get(wid)
    assert info.status == "finished"
    assert info.data.log == ["build", "repaired", "deploy", "announce"]  # type: ignore[attr-defined]
    kinds = [h["kind"] for h in await new.engine.history(wid)]
    assert kinds == ["created", "data_set", "goto", "retried"]


class Flaky(Workflow):
    workflow_type: ClassVar[str] = "Flaky"
    log: list[str] = []

    def definition(self) -> Any:
        return S(Step("first", lambda: self.log.append("first")), Step("second", self.second))

    def second(self) -> None:
        raise RuntimeError("bug in second")


class FlakyRemoved(Flaky):
    workflow_type = "Flaky"

    def definition(self) -> Any:
        return S(Step("second fixed", lambda: self.log.append("second fixed")))


async def test_in_flight_step_removed_marks_failed_naming_it(make_kit: KitFactory) -> None:
    old = await make_kit(Flaky)
    wid = await old.engine.new_workflow(Flaky())
    await old.drain()  # "first" ran; "second" fails and waits for its retry
    assert (await old.engine.get(wid)).attempts == 1
    new = await make_kit(FlakyRemoved)
    await new.engine.execute(wid)
    await new.advance(new.engine.retry_max)
    info = await new.engine.get(wid)
    assert info.status == "failed"
    assert "statement 'first' (thread 'main') no longer exists" in (info.error or "")
    await new.engine.goto(wid, "second fixed")
    await new.engine.retry(wid)
    await new.drain()
    info = await new.engine.get(wid)
    assert (info.status, info.data.log) == ("finished", ["first", "second fixed"])  # type: ignore[attr-defined]


async def test_set_data_is_validated(make_kit: KitFactory) -> None:
    kit = await make_kit(V1)
    wid = await kit.engine.new_workflow(V1())
    await kit.drain()
    from workflows import CorruptWorkflow

    with pytest.raises(CorruptWorkflow, match="does not validate"):
        await kit.engine.set_data(wid, {"log": "not a list"})
    assert (await kit.engine.get(wid)).data.log == ["build"]  # type: ignore[attr-defined]
