"""Slack's rate limits through the real app: the built-in Slack enforces its tiers, and the
bot spends its budget instead of colliding with them (bot.ratelimit)."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from tests.processes import poll
from tests.slackbot import ALICE, BOB, CAROL, RITA, Bot, at, running_bot, standin


async def test_a_429_holds_back_every_caller_of_that_method(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} {at(CAROL)} Deploy api")
    asked = [await bot.request_dm(user) for user in (ALICE, BOB, CAROL)]
    bot.slack.fail("chat.delete", status=429, retry_after=1, times=1)
    await bot.slack.click(ALICE, asked[0], messages.APPROVE_ACTION)
    for message in asked:
        await bot.gone(message)
    (refused, *deleted) = bot.slack.timeline("chat.delete")
    assert refused[1] == "ratelimited"
    assert [how for _, how in deleted] == ["ok"] * 3
    # Nobody in the process called chat.delete again before Retry-After had passed.
    assert all(when >= refused[0] + 1.0 for when, _ in deleted), bot.slack.timeline("chat.delete")
    assert bot.service.client.limiter.paused == {"chat.delete": 1}


async def test_deletions_queue_and_a_new_request_does_not_wait_behind_them(
    tmp_path: Path,
) -> None:
    """Twelve settled requests owe twelve deletions, more than Slack's Tier 3 burst: they
    are given later turns, kept as due times in the database (background work, nothing
    waits in the process), while a new approver is asked at once."""
    people = [
        (f"U0APP{i:02d}", f"approver{i}", f"U0REQ{i:02d}", f"requester{i}") for i in range(13)
    ]
    async with standin() as slack, running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}") as bot:
        for approver, name, requester, other in people:
            slack.add_user(approver, name)
            slack.add_user(requester, other)
        for approver, name, requester, _ in people[:12]:
            await slack.slash_command(requester, f"<@{approver}|{name}> Request of {name}")
        asked = [await bot.request_dm(approver) for approver, *_ in people[:12]]
        for message, (approver, *_) in zip(asked, people[:12], strict=True):
            await slack.click(approver, message, messages.APPROVE_ACTION)
        limiter = bot.service.client.limiter
        await poll(
            lambda: limiter.deferred.get("chat.delete", 0) > 0,
            15,
            "no deletion was given a later turn",
        )
        last, last_name, last_requester, _ = people[12]
        await slack.slash_command(last_requester, f"<@{last}|{last_name}> Urgent")
        await bot.request_dm(last)
        assert [m for m in asked if not m.deleted], "the deletions were not queued any more"
        for message in asked:
            await bot.gone(message, timeout=60)
        assert slack.errors_of("chat.delete") == []  # waited for, never refused
        assert "chat.delete" not in limiter.waited  # no task waited in the process
