"""Parties (`DB.set_parties`, `parties`, `count_parties`): who has a part in which
workflow, on the in-memory store and real SQLite and PostgreSQL alike: written again
unchanged they keep their time, open ones come oldest first and only while their workflow
runs, closed ones latest first, and a page is a page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import KitFactory
from tests.helpers import Manual
from workflows import On, S, Step, Wait, Workflow
from workflows.types import Party

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def kit_url(every_store_url: str) -> str:
    return every_store_url


class Waits(Workflow):
    def definition(self) -> Any:
        return S(Step("begin", lambda: None), Wait("w", On("answer", Manual())))


def party(person: str, workflow_id: str, minutes: int, **fields: Any) -> Party:
    at = T0 + timedelta(minutes=minutes)
    fields.setdefault("role", "approver")
    fields.setdefault("updated_at", at)
    return Party(person, workflow_id, since=at, **fields)


async def test_open_parts_oldest_first_closed_latest_first(make_kit: KitFactory) -> None:
    kit = await make_kit(Waits)
    ids = [await kit.engine.new_workflow(Waits()) for _ in range(4)]
    await kit.drain()
    db = kit.engine.db
    await db.set_parties(
        [
            party("U1", ids[2], 2, stand="waiting", title="third"),
            party("U1", ids[0], 0, stand="waiting", title="first"),
            party("U1", ids[1], 1, stand="waiting", title="second"),
            party("U1", ids[3], 3, role="requester", stand="1 of 2 approved"),
            party("U2", ids[0], 0, stand="waiting"),
        ]
    )
    waiting = await db.parties("U1", open=True, role="approver")
    assert [p.title for p in waiting] == ["first", "second", "third"]
    assert waiting[0] == party("U1", ids[0], 0, stand="waiting", title="first")
    assert await db.count_parties("U1", open=True, role="approver") == 3
    assert await db.count_parties("U1", open=True) == 4
    assert [p.title for p in await db.parties("U1", open=True, role="approver", limit=2)] == [
        "first",
        "second",
    ]
    page = await db.parties("U1", open=True, role="approver", limit=2, offset=2)
    assert [p.title for p in page] == ["third"]

    # Decided: closed, and latest first among the closed.
    later = T0 + timedelta(hours=1)
    await db.set_parties(
        [
            party("U1", ids[1], 1, stand="approved", title="second", open=False, updated_at=later),
            party("U1", ids[0], 0, stand="denied", title="first", open=False),
        ]
    )
    assert [p.title for p in await db.parties("U1", open=True, role="approver")] == ["third"]
    closed = await db.parties("U1", open=False)
    assert [(p.title, p.stand) for p in closed] == [("second", "approved"), ("first", "denied")]

    # The same again (a step that runs again) keeps the row's time.
    await db.set_parties([party("U1", ids[1], 1, stand="approved", title="second", open=False)])
    (again, _) = await db.parties("U1", open=False)
    assert again.updated_at == later


async def test_a_workflow_that_ended_without_saying_leaves_no_open_part(
    make_kit: KitFactory,
) -> None:
    kit = await make_kit(Waits)
    running, cancelled = kit.engine.new_workflow(Waits()), kit.engine.new_workflow(Waits())
    ids = [await running, await cancelled]
    await kit.drain()
    await kit.engine.db.set_parties([party("U1", ids[0], 0), party("U1", ids[1], 1)])
    await kit.engine.cancel(ids[1], "no longer needed")
    assert [p.workflow_id for p in await kit.engine.db.parties("U1", open=True)] == [ids[0]]
    assert await kit.engine.db.count_parties("U1", open=True) == 1
