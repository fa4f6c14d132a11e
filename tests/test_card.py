"""The request card, the approvers' records and the requester's buttons, through the real
app and the strict built-in Slack: the card's text at every stage, its thread, Cancel,
Extend and Nudge, a card whose updates meet 429s and 500s, and a channel the bot is not
in."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import messages
from bot.routines.card import CANCEL_ACTION, EXTEND_ACTION, NUDGE_ACTION
from bot.sandbox.slack import Message, SlackStandin
from tests.processes import BotProcess, poll
from tests.slackbot import ALICE, BOB, CAROL, EVE, RITA, Bot, at, bot_process_env

GENERAL = "C0GENERAL"


def shown(message: Message) -> str:
    """Everything a person reads in a message: its blocks' texts, one per line."""
    texts: list[str] = []
    for block in message.blocks or []:
        if "text" in block:
            texts.append(str(block["text"]["text"]))
        for element in block.get("elements", []):
            if element.get("type") in ("mrkdwn", "plain_text"):
                texts.append(str(element["text"]))
            elif element.get("type") == "button":
                texts.append(f"[{element['text']['text']}]")
    return "\n".join(texts) if texts else message.text


def card_in(bot: Bot, channel: str = GENERAL, user: str = RITA) -> Message | None:
    cards = [
        m
        for m in bot.slack.visible(user, channel)
        if m.user != user and not m.thread_ts and not m.ephemeral_to and m.blocks
    ]
    return cards[0] if cards else None


async def the_card(bot: Bot, channel: str = GENERAL, user: str = RITA) -> Message:
    await poll(lambda: card_in(bot, channel, user), 10, "no request card")
    card = card_in(bot, channel, user)
    assert card is not None
    return card


def thread(bot: Bot, card: Message) -> list[str]:
    return [m.text for m in bot.slack.visible(RITA, card.channel) if m.thread_ts == card.ts]


async def showing(bot: Bot, card: Message, *parts: str, timeout: float = 10.0) -> None:
    await poll(
        lambda: all(p in shown(card) for p in parts),
        timeout,
        f"the card never showed {parts}: it shows {shown(card)!r}",
    )


def record_of(bot: Bot, user: str) -> Message | None:
    records = [m for m in bot.slack.visible(user) if not m.ephemeral_to and "request ·" in m.text]
    return records[-1] if records else None


async def the_record(bot: Bot, user: str, *parts: str) -> Message:
    def kept() -> bool:
        record = record_of(bot, user)
        return record is not None and all(p in record.text for p in parts)

    await poll(kept, 10, f"{user} was not left a record saying {parts}")
    record = record_of(bot, user)
    assert record is not None
    return record


async def test_a_quorum_of_two_through_its_card(bot: Bot) -> None:
    await bot.slack.slash_command(
        RITA, f"{at(ALICE)} {at(BOB)} {at(CAROL)} --quorum 2 Deploy api v2.3", channel=GENERAL
    )
    card = await the_card(bot)
    await showing(bot, card, "*Waiting for approval*", "Deploy api v2.3", "0 of 2 approved")
    assert shown(card).count(":hourglass_flowing_sand:") == 3
    assert "<!date^" in shown(card)  # the deadline, in each reader's own time
    assert "[Cancel]\n[Extend]\n[Nudge]" in shown(card)

    await bot.slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
    await showing(bot, card, ":white_check_mark: <@U0ALICE>", "1 of 2 approved")
    alice = await the_record(bot, ALICE, "You approved", "still waiting for the others")
    assert "View the request>" in alice.text  # a link to the card

    await bot.slack.click(BOB, await bot.request_dm(BOB), messages.APPROVE_ACTION)
    await showing(bot, card, "*Approved by <@U0ALICE>, <@U0BOB> · <!date^")
    assert "[Cancel]" not in shown(card)  # settled for good: no buttons left
    await the_record(bot, CAROL, "You did not answer", "Approved by <@U0ALICE>, <@U0BOB>")
    await the_record(bot, ALICE, "You approved", "Approved by <@U0ALICE>, <@U0BOB>")
    assert [m for m in bot.slack.visible(CAROL) if "Approval requested" in m.text] == []
    await poll(lambda: len(thread(bot, card)) == 2, 10, "the thread is not complete")
    # The timeline: each decision, in order (the card itself says how it ended).
    assert thread(bot, card) == ["<@U0ALICE> approved", "<@U0BOB> approved"]
    assert len([m for m in bot.slack.workspace.messages if m.ts == card.ts]) == 1  # one card


async def test_a_deny_with_its_reason_on_the_card(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(CAROL)} Give eve admin", channel=GENERAL)
    card = await the_card(bot)
    await bot.slack.click(CAROL, await bot.request_dm(CAROL), messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(CAROL), 10, "the deny form did not open")
    (form,) = bot.slack.open_views(CAROL)
    await bot.slack.submit_view(
        CAROL, form, {messages.REASON_BLOCK: {messages.REASON_INPUT: "Not without a ticket"}}
    )
    await showing(bot, card, "*Denied by <@U0CAROL>: Not without a ticket")
    await the_record(bot, CAROL, "You denied", "Denied by <@U0CAROL>: Not without a ticket")


async def test_a_timeout_on_the_card(bot: Bot) -> None:
    await bot.slack.slash_command(
        RITA, f"{at(ALICE)} {at(BOB)} --quorum 2 --timeout 2s Quick one", channel=GENERAL
    )
    card = await the_card(bot)
    await bot.slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
    await showing(bot, card, "*Timed out · 1 of 2 approved*", timeout=15)
    await the_record(bot, BOB, "You did not answer", "Timed out · 1 of 2 approved")


async def test_the_requester_cancels_with_a_reason_and_a_stranger_cannot(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Wrong one", channel=GENERAL)
    card = await the_card(bot)
    to_alice = await bot.request_dm(ALICE)
    await bot.slack.click(EVE, card, CANCEL_ACTION)
    await poll(
        lambda: "Only the requester can use this button." in bot.ephemeral_texts(EVE),
        10,
        "the stranger was not told",
    )
    assert bot.slack.open_views(EVE) == []
    await bot.slack.click(RITA, card, CANCEL_ACTION)
    await poll(lambda: bot.slack.open_views(RITA), 10, "the cancel form did not open")
    (form,) = bot.slack.open_views(RITA)
    await bot.slack.submit_view(RITA, form, {"reason": {"reason_input": "Submitted in error"}})
    await showing(bot, card, "*Cancelled by <@U0RITA>: Submitted in error*")
    await bot.gone(to_alice)
    await the_record(bot, ALICE, "You did not answer", "Cancelled by <@U0RITA>: Submitted in error")
    await the_record(bot, BOB, "Cancelled by <@U0RITA>")
    assert await bot.status(await bot.only_workflow()) == "cancelled"
    await poll(lambda: any("Cancelled by" in t for t in thread(bot, card)), 10, "no thread line")


async def test_extend_moves_the_deadline_and_the_approvers_see_it(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} --timeout 2h Later", channel=GENERAL)
    card = await the_card(bot)
    to_alice = await bot.request_dm(ALICE)
    before = shown(card)
    await bot.slack.click(RITA, card, EXTEND_ACTION)
    await poll(lambda: bot.slack.open_views(RITA), 10, "the extend form did not open")
    (form,) = bot.slack.open_views(RITA)
    await bot.slack.submit_view(RITA, form, {"by": {"by_input": "14400"}})  # 4h
    await poll(lambda: shown(card) != before, 10, "the card did not change")
    await poll(
        lambda: any("extended the deadline by 4h" in t for t in thread(bot, card)),
        10,
        "no thread line for the extension",
    )
    stamp = lambda text: text.split("expires <!date^")[1].split("^")[0]  # noqa: E731
    assert int(stamp(shown(card))) - int(stamp(before)) == 4 * 3600
    await poll(
        lambda: (
            stamp(to_alice.text if "expires" in to_alice.text else shown(to_alice))
            == stamp(shown(card))
        ),
        10,
        "alice's request does not show the new deadline",
    )
    database = str(bot.service.settings.database_url).removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        (due,) = db.execute("SELECT fire_at FROM workflow_timers").fetchall()
    fires = datetime.fromisoformat(due[0]).replace(tzinfo=UTC)
    assert int(fires.timestamp()) == int(stamp(shown(card)))  # the durable timer moved too


async def test_nudge_reminds_who_has_not_answered_once_an_hour(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} --quorum 2 Ping", channel=GENERAL)
    card = await the_card(bot)
    await bot.slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
    await showing(bot, card, "1 of 2 approved")
    await bot.slack.click(RITA, card, NUDGE_ACTION)
    await bot.dm(BOB, ":bell: <@U0RITA> is waiting for your decision")
    assert [m for m in bot.slack.visible(ALICE) if ":bell:" in m.text] == []
    await poll(
        lambda: "The approvers who have not answered are reminded." in bot.ephemeral_texts(RITA),
        10,
        "the requester was not told",
    )

    async def pressed_again() -> bool:
        # Until the first nudge is handled, a press is told to come back in a moment.
        told = len(bot.ephemeral_texts(RITA))
        await bot.slack.click(RITA, card, NUDGE_ACTION)
        await poll(lambda: len(bot.ephemeral_texts(RITA)) > told, 10, "no answer")
        return "you can nudge them again" in bot.ephemeral_texts(RITA)[-1]

    await poll(pressed_again, 10, "a second nudge was not refused", interval=0.5)
    assert len([m for m in bot.slack.visible(BOB) if ":bell:" in m.text]) == 1
    await bot.slack.click(EVE, card, NUDGE_ACTION)
    await poll(
        lambda: "Only the requester can use this button." in bot.ephemeral_texts(EVE),
        10,
        "the stranger was not told",
    )


async def test_a_card_whose_updates_fail_converges(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Flaky Slack", channel=GENERAL)
    card = await the_card(bot)
    bot.slack.fail("chat.update", status=429, error="ratelimited", retry_after=1, times=2)
    bot.slack.fail("chat.update", status=500, times=2)
    await bot.slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
    await showing(bot, card, "*Approved by <@U0ALICE> · <!date^", timeout=30)
    errors: list[Any] = bot.slack.errors_of("chat.update")
    assert "ratelimited" in errors
    assert "internal_error" in errors
    assert len([m for m in bot.slack.workspace.messages if m.ts == card.ts]) == 1


async def test_a_channel_the_bot_is_not_in_gets_the_card_in_the_requesters_dm(bot: Bot) -> None:
    bot.slack.add_channel("C0SECRET", "secret", member=False)
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Quietly", channel="C0SECRET")
    card = await the_card(bot, bot.slack.dm_channel(RITA))
    await showing(bot, card, "I could not post this in <#C0SECRET>", "/invite @approvals")
    assert card_in(bot, "C0SECRET") is None
    await bot.slack.click(ALICE, await bot.request_dm(ALICE), messages.APPROVE_ACTION)
    await showing(bot, card, "*Approved by <@U0ALICE>")


async def test_sigkill_between_a_decision_and_its_card_update(
    slack: SlackStandin, tmp_path: Path
) -> None:
    """The decision is stored, the card's update has not landed (Slack answers 500), the
    process dies: the next one brings the card to its end, with no second card or line."""
    env = bot_process_env(slack, f"sqlite:///{tmp_path / 'bot.db'}")
    env["WORKFLOW_LEASE_SECONDS"] = "3"
    process = BotProcess(env, tmp_path / "bot.log")
    await process.ready()
    await slack.slash_command(RITA, f"{at(ALICE)} Survive the card", channel=GENERAL)
    await poll(lambda: [m for m in slack.visible(ALICE) if m.blocks], 15, "alice not asked")
    (to_alice,) = [m for m in slack.visible(ALICE) if m.blocks]
    card = next(m for m in slack.visible(RITA, GENERAL) if m.blocks and not m.thread_ts)
    slack.fail("chat.update", status=500, times=10_000)
    answer = await slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    assert answer.status == 200  # acknowledged: the decision is stored
    await poll(lambda: slack.errors_of("chat.update"), 15, "the card update never came")
    process.kill()
    assert "Approved by" not in shown(card)
    slack.heal("chat.update")
    restarted = BotProcess(env, tmp_path / "bot.log")
    await restarted.ready()
    await poll(lambda: "*Approved by <@U0ALICE> · <!date^" in shown(card), 30, "card not ended")
    await poll(
        lambda: any("approved" in m.text for m in slack.visible(RITA) if not m.ephemeral_to),
        15,
        "the requester was not told",
    )
    assert await restarted.stop() == 0
    cards = [m for m in slack.workspace.messages if m.channel == GENERAL and m.blocks]
    assert [m.ts for m in cards] == [card.ts]  # one card
    lines = [m.text for m in slack.workspace.messages if m.thread_ts == card.ts]
    assert len(lines) == 1  # alice's approval, once
    assert lines[0].endswith("<@U0ALICE> approved")
