"""End to end: the real Bolt app over real HTTP, the Slack stand-in playing Slack."""

from __future__ import annotations

import asyncio

from bot import messages
from tests.processes import poll
from tests.slackbot import ALICE, BOB, CAROL, EVE, RITA, Bot, at


async def test_approve(bot_on_each_db: Bot) -> None:
    bot = bot_on_each_db
    answer = await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Deploy api v2.3")
    assert answer.status == 200
    assert "Approval request sent to <@U0ALICE>, <@U0BOB>" in answer.json["text"]
    to_alice = await bot.request_dm(ALICE)
    to_bob = await bot.request_dm(BOB)
    assert "Deploy api v2.3" in str(to_alice.blocks)
    assert to_alice.channel.startswith("D")
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    outcome = await bot.dm(RITA, "approved")
    assert "*approved* by <@U0ALICE>" in outcome.text
    await bot.gone(to_alice)
    await bot.gone(to_bob)
    await poll(
        lambda: "Thanks, your approval is recorded." in bot.ephemeral_texts(ALICE),
        10,
        "the approver was not thanked",
    )
    wid = await bot.only_workflow()
    info = await bot.service.engine.get(wid)
    assert info.status == "finished"
    assert info.output["outcome"] == "approved"

    async def torn_down() -> bool:  # records are left as the teardowns end
        return not (await bot.service.engine.db.get(wid)).state.orphans

    await poll(torn_down, 10, "the teardowns did not end")
    dms = [c for c in bot.slack.calls_of("chat.postMessage") if c["channel"] in (ALICE, BOB, RITA)]
    assert len(dms) == 5  # two requests, two records left in their place, one outcome


async def test_deny_with_a_reason(bot_on_each_db: Bot) -> None:
    bot = bot_on_each_db
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Give eve admin access")
    to_alice = await bot.request_dm(ALICE)
    await bot.slack.click(ALICE, to_alice, messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the modal did not open")
    (modal,) = bot.slack.open_views(ALICE)
    assert modal.view["title"]["text"] == "Deny request"
    empty = await bot.slack.submit_view(
        ALICE, modal, {messages.REASON_BLOCK: {messages.REASON_INPUT: "  "}}
    )
    assert empty.json["response_action"] == "errors"
    assert await bot.status(await bot.only_workflow()) == "waiting"
    done = await bot.slack.submit_view(
        ALICE, modal, {messages.REASON_BLOCK: {messages.REASON_INPUT: "Not without a ticket"}}
    )
    assert done.status == 200
    outcome = await bot.dm(RITA, "denied")
    assert "*denied* by <@U0ALICE>" in outcome.text
    assert "*Reason:* Not without a ticket" in outcome.text
    await bot.gone(to_alice)


async def test_timeout_tells_the_requester(bot_on_each_db: Bot) -> None:
    bot = bot_on_each_db
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} --timeout 1s Quick one")
    to_alice = await bot.request_dm(ALICE)
    outcome = await bot.dm(RITA, "timed out")
    assert "*timed out*" in outcome.text
    await bot.gone(to_alice)
    answer = await bot.slack.click(BOB, to_alice, messages.APPROVE_ACTION)
    assert answer.status == 200
    await poll(
        lambda: any("already closed" in t for t in bot.ephemeral_texts(BOB)),
        10,
        "the late click got no explanation",
    )


async def test_quorum_two_of_two(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} --quorum 2 Rotate keys")
    to_alice = await bot.request_dm(ALICE)
    to_bob = await bot.request_dm(BOB)
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await bot.gone(to_alice)  # her part is done
    wid = await bot.only_workflow()
    assert (await bot.service.engine.get(wid)).data.approved_by == [ALICE]  # type: ignore[attr-defined]
    assert not to_bob.deleted
    assert not [m for m in bot.slack.visible(RITA) if "approved" in m.text]
    await bot.slack.click(BOB, to_bob, messages.APPROVE_ACTION)
    outcome = await bot.dm(RITA, "approved")
    assert "<@U0ALICE>, <@U0BOB>" in outcome.text


async def test_clicks_by_strangers_and_the_requester_change_nothing(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(RITA)} Buy a new laptop")
    to_alice = await bot.request_dm(ALICE)
    to_rita = await bot.request_dm(RITA)
    await bot.slack.click(EVE, to_alice, messages.APPROVE_ACTION)
    await bot.slack.click(RITA, to_rita, messages.APPROVE_ACTION)
    await bot.slack.click(EVE, to_alice, messages.DENY_ACTION)
    await poll(
        lambda: len(bot.ephemeral_texts(EVE)) == 2 and bot.ephemeral_texts(RITA),
        10,
        "refusals were not explained",
    )
    assert bot.ephemeral_texts(EVE) == ["You are not an approver of this request."] * 2
    assert "You cannot approve or deny your own request." in bot.ephemeral_texts(RITA)
    assert bot.slack.open_views(EVE) == []
    wid = await bot.only_workflow()
    info = await bot.service.engine.get(wid)
    assert info.status == "waiting"
    assert info.data.approved_by == []  # type: ignore[attr-defined]
    assert [h["kind"] for h in await bot.service.engine.history(wid)] == ["created"]


async def test_five_concurrent_clicks_resolve_once(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Ship it")
    to_alice = await bot.request_dm(ALICE)
    answers = await asyncio.gather(
        *(bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION) for _ in range(5))
    )
    assert [a.status for a in answers] == [200] * 5
    await bot.dm(RITA, "approved")
    await poll(lambda: len(bot.ephemeral_texts(ALICE)) == 5, 10, "not every click answered")
    texts = bot.ephemeral_texts(ALICE)
    assert texts.count("Thanks, your approval is recorded.") == 1
    assert len([t for t in texts if "already" in t]) == 4
    await asyncio.sleep(0)  # let nothing else arrive: the outcome was posted once
    outcomes = [m for m in bot.slack.visible(RITA) if "approved" in m.text]
    assert len(outcomes) == 1
    wid = await bot.only_workflow()
    callbacks = [h for h in await bot.service.engine.history(wid) if h["kind"] == "callback"]
    assert len(callbacks) == 1


async def test_forged_stale_and_unsigned_requests_are_refused(bot: Bot) -> None:
    text = f"{at(ALICE)} Forged"
    forged = await bot.slack.slash_command(RITA, text, signature="v0=" + "0" * 64)
    stale = await bot.slack.slash_command(RITA, text, timestamp="1000000000")
    unsigned = await bot.slack.slash_command(RITA, text, headers={})
    assert [forged.status, stale.status, unsigned.status] == [401, 401, 401]
    assert await bot.service.engine.db.list_workflows() == []  # type: ignore[attr-defined]
    assert bot.slack.calls_of("chat.postMessage") == []


async def test_forged_and_unsigned_clicks_are_refused(bot: Bot) -> None:
    """Clicks take a faster decoding path (bot.incoming); verification is the same."""
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Ship it")
    to_alice = await bot.request_dm(ALICE)
    forged = await bot.slack.click(
        ALICE, to_alice, messages.APPROVE_ACTION, signature="v0=" + "0" * 64
    )
    stale = await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION, timestamp="1000")
    unsigned = await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION, headers={})
    assert [forged.status, stale.status, unsigned.status] == [401, 401, 401]
    wid = await bot.only_workflow()

    async def waiting() -> bool:  # its setups may still be finishing
        return (await bot.service.engine.get(wid)).status == "waiting"

    await poll(waiting, 10, "the request did not settle into waiting")
    assert [h["kind"] for h in await bot.service.engine.history(wid)] == ["created"]
    answer = await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)  # a real one
    assert answer.status == 200
    await bot.dm(RITA, "approved")


async def test_malformed_commands_get_usage_and_start_nothing(bot: Bot) -> None:
    cases = {
        "": "the command is empty",
        "Deploy now": "name at least one approver",
        f"{at(ALICE)}": "say what needs approving",
        f"{at(ALICE)} --timeout soon Deploy": "`soon` is not a duration",
        f"{at(ALICE)} --quorum 2 Deploy": "the quorum (2) is more than the 1 approver named",
        f"{at(ALICE)} {at(RITA)} --quorum 2 Deploy": "only 1 of the approvers can approve",
        f"{at(ALICE)} --fast Deploy": "unknown option `--fast`",
        "@alice Deploy": "`@alice` is not a Slack user mention",
        f"{at(RITA)} Deploy": "you cannot approve your own request",
    }
    for text, problem in cases.items():
        answer = await bot.slack.slash_command(RITA, text)
        assert answer.status == 200
        assert problem in answer.json["text"], (text, answer.json["text"])
        assert "*Usage:*" in answer.json["text"]
        assert answer.json["response_type"] == "ephemeral"
    helped = await bot.slack.slash_command(RITA, "help")
    assert helped.json["text"].startswith("*Usage:*")
    assert await bot.service.engine.db.list_workflows() == []  # type: ignore[attr-defined]


async def test_approvers_read_the_whole_panel_and_quorum(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} {at(CAROL)} --quorum 2 Deploy")
    for user in (ALICE, BOB, CAROL):
        context = (await bot.request_dm(user)).blocks[2]["elements"][0]["text"]
        assert "needs 2 of 3 approvers" in context, context
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} --quorum 2 Rotate keys")
    rotate = await bot.dm(BOB, "Rotate keys")
    assert "needs all 2 approvers" in rotate.blocks[2]["elements"][0]["text"]
    await bot.slack.slash_command(RITA, f"{at(CAROL)} Buy a desk")
    desk = await bot.dm(CAROL, "Buy a desk")
    assert "needs your approval" in desk.blocks[2]["elements"][0]["text"]


async def test_line_breaks_reach_approver_and_requester(bot: Bot) -> None:
    text = "Deploy api v2.3\n\n• migrations: yes\n• downtime: none"
    await bot.slack.slash_command(RITA, f"{at(ALICE)} --timeout 1h {text}")
    to_alice = await bot.request_dm(ALICE)
    assert to_alice.blocks[1]["text"]["text"] == text
    await bot.slack.click(ALICE, to_alice, messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the modal did not open")
    (modal,) = bot.slack.open_views(ALICE)
    assert ">• migrations: yes\n>• downtime: none" in modal.view["blocks"][0]["text"]["text"]
    await bot.slack.submit_view(
        ALICE, modal, {messages.REASON_BLOCK: {messages.REASON_INPUT: "Wait for Monday"}}
    )
    outcome = await bot.dm(RITA, "denied")
    assert ">Deploy api v2.3\n>\n>• migrations: yes\n>• downtime: none" in outcome.text


async def test_a_long_request_is_readable_whole(bot: Bot) -> None:
    paragraphs = [f"Paragraph {i}: " + "all the details of the change. " * 40 for i in range(14)]
    text = "\n\n".join(paragraphs)  # about 17,500 characters
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {text}")
    to_alice = await bot.request_dm(ALICE)
    shown = to_alice.blocks[1]["text"]["text"]
    assert shown.endswith("…")
    assert len(shown) <= messages.PREVIEW_MAX
    assert text.startswith(shown.removesuffix("…"))
    await bot.slack.click(EVE, to_alice, messages.FULL_REQUEST_ACTION)  # not for strangers
    await poll(lambda: bot.ephemeral_texts(EVE), 10, "the stranger was not answered")
    assert bot.ephemeral_texts(EVE) == [
        "Only the requester and the approvers can read this request."
    ]
    await bot.slack.click(ALICE, to_alice, messages.FULL_REQUEST_ACTION)
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the full request did not open")
    (modal,) = bot.slack.open_views(ALICE)
    sections = [b["text"]["text"] for b in modal.view["blocks"] if b["type"] == "section"]
    assert len(sections) > 1
    assert all(s in text and "\n\n" in s for s in sections)
    assert "".join("".join(sections).split()) == "".join(text.split())  # all of it, in order
    assert bot.slack.open_views(EVE) == []
    assert await bot.status(await bot.only_workflow()) == "waiting"  # reading decides nothing


async def test_a_request_too_long_to_show_is_refused_with_the_limit(bot: Bot) -> None:
    answer = await bot.slack.slash_command(RITA, f"{at(ALICE)} {'x' * 40_001}")
    assert "the request is 40,001 characters long; at most 40,000" in answer.json["text"]
    assert await bot.service.engine.db.list_workflows() == []  # type: ignore[attr-defined]


async def test_rate_limits_and_server_errors_still_post_one_dm_each(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
    bot.slack.fail("chat.postMessage", status=500, times=5)  # more than the client retries
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Survive Slack's bad minute")
    to_alice = await bot.dm(ALICE, "Approval", 30)
    to_bob = await bot.dm(BOB, "Approval", 30)
    live = [m for u in (ALICE, BOB) for m in bot.slack.visible(u) if not m.ephemeral_to]
    assert live == [to_alice, to_bob] or live == [to_bob, to_alice]
    posts = [m for m in bot.slack.workspace.messages if "Approval requested" in m.text]
    assert len(posts) == 2  # nothing posted twice, nothing lost
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await bot.dm(RITA, "approved")


async def test_healthz(bot: Bot) -> None:
    assert bot.slack._http is not None
    async with bot.slack._http.get(f"{bot.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_expired_trigger_asks_to_click_again(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Slow Slack")
    to_alice = await bot.request_dm(ALICE)
    bot.slack.trigger_ttl = -1.0  # every trigger has expired by the time it is used
    await bot.slack.click(ALICE, to_alice, messages.DENY_ACTION)
    await poll(lambda: bot.ephemeral_texts(ALICE), 10, "the approver was not told")
    assert bot.ephemeral_texts(ALICE) == [
        "Slack could not open the form in time; please click Deny again."
    ]
    assert bot.slack.open_views(ALICE) == []
    assert bot.slack.calls_of("views.open")  # it was tried, and Slack said expired
    bot.slack.trigger_ttl = 3.0
    await bot.slack.click(ALICE, to_alice, messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the modal did not open")
