"""Effects (`DB.effect` / `record_effect`): what steps and managers did outside a workflow,
on real SQLite and PostgreSQL and on the in-memory store, and the bot's use of them: a
first attempt asks Slack nothing but to post, a retried one searches before posting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot import messages
from bot.sandbox.slack import Message
from tests.processes import poll
from tests.slackbot import ALICE, BOB, RITA, Bot, at
from workflows.store import SQLStore
from workflows.tables import EF
from workflows.testing.memory import MemoryStore


async def check_effects(store: SQLStore | MemoryStore) -> None:
    assert await store.effect("slack:dm:U1") is None
    await store.record_effect("slack:dm:U1", "D123")
    await store.record_effect("slack:post:w1:outcome", {"begun": True}, "w1")
    assert await store.effect("slack:dm:U1") == "D123"
    assert await store.effect("slack:post:w1:outcome") == {"begun": True}
    await store.record_effect("slack:post:w1:outcome", {"channel": "D123", "ts": "1.2"}, "w1")
    assert await store.effect("slack:post:w1:outcome") == {"channel": "D123", "ts": "1.2"}
    for value in (True, 0, 1.5, "1", [1, "a"]):  # SQLite's JSON columns have numeric affinity
        await store.record_effect("slack:value", value)
        assert await store.effect("slack:value") == value
    with pytest.raises(ValueError, match="an effect records a value"):
        await store.record_effect("slack:dm:U1", None)
    assert await store.effect("slack:dm:U1") == "D123"


async def test_effects_on_each_database(database_url: str) -> None:
    store = SQLStore(database_url)
    await store.start()
    try:
        await check_effects(store)
    finally:
        await store.close()
    again = SQLStore(database_url)  # what one process recorded, the next one reads
    await again.start()
    try:
        assert await again.effect("slack:dm:U1") == "D123"
        # The raw statements store what SQLAlchemy's JSON and timestamp types would: each
        # side reads the other's rows.
        rows = await again._run(
            lambda conn: (
                conn.execute(sa.select(EF).where(EF.c.key == "slack:post:w1:outcome"))
                .mappings()
                .all()
            )
        )
        assert [(r["value"], r["workflow_id"]) for r in rows] == [
            ({"channel": "D123", "ts": "1.2"}, "w1")
        ]
        assert rows[0]["updated_at"].tzinfo is not None
        now = datetime.now(UTC)
        await again._run(
            lambda conn: conn.execute(
                EF.insert().values(key="slack:old", value={"n": 1}, updated_at=now)
            )
        )
        assert await again.effect("slack:old") == {"n": 1}
    finally:
        await again.close()


async def test_effects_in_memory() -> None:
    await check_effects(MemoryStore())


async def test_a_first_attempt_asks_slack_nothing_but_to_post(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Deploy api v2.3")
    to_alice = await bot.request_dm(ALICE)
    to_bob = await bot.request_dm(BOB)
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await bot.dm(RITA, "approved")
    await bot.gone(to_alice)
    await bot.gone(to_bob)
    await poll(  # bob's record follows the deletion of his request
        lambda: [m for m in bot.slack.visible(BOB) if "request ·" in m.text], 10, "no record"
    )
    # Bolt's auth.test once per process aside, the mission's minimum and the card: each
    # approver's DM posted and deleted and a record left in its place (2 + 2 + 2), the
    # requester told (1); the card posted (1) and linked (1), Alice's approval a line in
    # its thread (1), the card updated once, when settled. Nothing is looked up: no
    # history, no conversations.open. Nobody here has opened the App Home, so none is
    # published (an opened one is kept in step: tests/test_home.py).
    methods = Counter(method for method, _ in bot.slack.calls if method != "auth.test")
    assert methods == {
        "chat.postMessage": 7,
        "chat.getPermalink": 1,
        "chat.update": 1,
        "chat.delete": 2,
    }


async def test_a_retried_outcome_searches_once_and_posts_once(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Deploy api v2.4")
    to_alice = await bot.request_dm(ALICE)
    to_rita = [c for c in bot.slack.calls_of("chat.postMessage") if c["channel"] == RITA]
    # The outcome (the one post to Rita) fails more often than the client retries.
    bot.slack.fail("chat.postMessage", status=500, times=4, channel=RITA)
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    outcome = await bot.dm(RITA, "approved", timeout=30)
    posts = [c for c in bot.slack.calls_of("chat.postMessage") if c["channel"] == RITA]
    assert len(posts) - len(to_rita) == 5  # 4 refused, 1 posted
    assert len(bot.slack.calls_of("conversations.history")) == 1  # only the retried step
    # Rita had no DM with the bot yet: opened once to search it, and recorded from then on.
    assert bot.slack.calls_of("conversations.open") == [{"users": RITA}]
    assert await bot.service.engine.db.effect(f"slack:dm:{RITA}") == outcome.channel
    assert [m for m in bot.slack.visible(RITA) if "approved" in m.text] == [outcome]


async def test_a_post_put_off_for_its_budget_is_no_post_to_look_for(bot: Bot) -> None:
    """Three requests to Alice at once: her DM channel's budget (about one a second,
    a short burst) puts the records she is left off; when their turn comes they are
    posted as first attempts, with no history searched for them."""
    for n in range(3):
        await bot.slack.slash_command(RITA, f"{at(ALICE)} Deploy api v3.{n}")

    def requests() -> list[Message]:
        return [m for m in bot.slack.visible(ALICE) if "Approve" in str(m.blocks)]

    await poll(lambda: len(requests()) == 3, 15, "alice was not asked three times")
    for request in requests():
        await bot.slack.click(ALICE, request, messages.APPROVE_ACTION)
    await poll(
        lambda: len([m for m in bot.slack.visible(ALICE) if "request ·" in m.text]) == 3,
        20,
        "alice was not left three records",
    )
    assert bot.slack.calls_of("conversations.history") == []
    records = await bot.service.engine.db.list_workflows()  # type: ignore[attr-defined]
    assert [(r.status, r.attempts, r.error) for r in records] == [("finished", 0, None)] * 3
