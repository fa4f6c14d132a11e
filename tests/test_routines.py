"""The routines as a user's workflow includes them: approvals (one, and two in sequence)
driven through the real app and the strict built-in Slack, a notification posted once
across retries, and a webhook to a real local aiohttp server that checks its signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.routines import ApprovalRuleError, Webhooks, verify
from bot.routines.webhook import SIGNATURE, TIMESTAMP, sign
from tests.conftest import KitFactory
from tests.processes import free_port, poll
from tests.receiver import SECRET, Receiver, running_receiver
from tests.routine_flows import CHANNEL, Announcement, Clearance, Delivery, Failures, Release
from tests.slackbot import ALICE, BOB, CAROL, RITA, Bot, at, running_bot, standin

BLUEPRINTS = "bot.blueprints.approval,tests.routine_flows"


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[Bot]:
    """The real bot with the tests' own blueprint loaded beside the shipped one."""
    async with (
        standin(commands=["/approval", "/release"]) as slack,
        running_bot(
            slack, f"sqlite:///{tmp_path / 'bot.db'}", blueprints=BLUEPRINTS, webhook_secret=SECRET
        ) as bot,
    ):
        yield bot


async def poll_status(bot: Bot, workflow_id: str, status: str, timeout: float = 15.0) -> None:
    async def reached() -> bool:
        return await bot.status(workflow_id) == status

    await poll(reached, timeout, f"workflow {workflow_id} did not become {status}")


# --- the approval routine ------------------------------------------------------------------


async def test_a_workflow_of_our_own_includes_the_approval(flows: Bot) -> None:
    bot = flows
    answer = await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} 2.3", command="/release")
    assert answer.status == 200
    to_alice = await bot.dm(ALICE, "Release 2.3")
    to_bob = await bot.dm(BOB, "Release 2.3")
    assert "Approval requested" in to_alice.text
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    told = await bot.dm(RITA, "Release 2.3: approved")
    assert told.channel.startswith("D")
    await poll(
        lambda: any("Releasing 2.3" in m.text for m in bot.slack.visible(RITA, CHANNEL)),
        10,
        "the channel was not told",
    )
    await bot.gone(to_bob)  # the workflow ended: the wait of whoever did not answer too
    wid = await bot.only_workflow()
    await poll_status(bot, wid, "finished")
    release = (await bot.service.engine.get(wid)).data
    assert isinstance(release, Release)
    assert release.sign_off.outcome == "approved"
    assert release.sign_off.approved_by == [ALICE]
    assert release.sign_off.requested_at is not None
    assert release.sign_off.decided_at is not None
    assert release.sign_off.decided_at >= release.sign_off.requested_at


async def test_two_approvals_in_sequence(flows: Bot) -> None:
    bot = flows
    engine = bot.service.engine
    wid = await engine.new_workflow(
        Clearance(requester=RITA, legal_team=[ALICE, CAROL], security_team=[BOB, CAROL])
    )
    legal = await bot.dm(ALICE, "Clearance: legal")
    carol_legal = await bot.dm(CAROL, "Clearance: legal")
    assert not [m for m in bot.slack.visible(BOB) if "Clearance" in m.text]  # not yet
    threads = {t.id for t in (await engine.get(wid)).state.threads}
    assert {"legal: ask-U0ALICE", "legal: ask-U0CAROL", "main"} <= threads

    await bot.slack.click(ALICE, legal, messages.APPROVE_ACTION)
    security = await bot.dm(BOB, "Clearance: security")
    carol_security = await bot.dm(CAROL, "Clearance: security")
    # Carol's first request stays up while the workflow runs on; her click is refused.
    await bot.slack.click(CAROL, carol_legal, messages.APPROVE_ACTION)
    await poll(
        lambda: any(
            "Already approved by <@U0ALICE> · <!date^" in t for t in bot.ephemeral_texts(CAROL)
        ),
        10,
        "the late click got no explanation",
    )
    await bot.slack.click(BOB, security, messages.APPROVE_ACTION)
    await poll_status(bot, wid, "finished")
    await bot.gone(carol_security)
    await bot.gone(carol_legal)
    info = await engine.get(wid)
    assert info.output == "approved"
    assert isinstance(info.data, Clearance)
    assert info.data.legal.approved_by == [ALICE]  # Carol's late click changed nothing
    assert info.data.security.approved_by == [BOB]
    assert info.data.legal.decided_at is not None
    assert info.data.security.requested_at is not None
    assert info.data.security.requested_at >= info.data.legal.decided_at


async def test_a_denial_in_the_first_approval_skips_the_second(flows: Bot) -> None:
    bot = flows
    wid = await bot.service.engine.new_workflow(
        Clearance(requester=RITA, legal_team=[ALICE], security_team=[BOB])
    )
    legal = await bot.dm(ALICE, "Clearance: legal")
    await bot.slack.click(ALICE, legal, messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(ALICE), 10, "the modal did not open")
    (modal,) = bot.slack.open_views(ALICE)
    await bot.slack.submit_view(
        ALICE, modal, {messages.REASON_BLOCK: {messages.REASON_INPUT: "no contract"}}
    )
    await poll_status(bot, wid, "finished")
    info = await bot.service.engine.get(wid)
    assert info.output == "refused by legal"
    assert isinstance(info.data, Clearance)
    assert (info.data.legal.denied_by, info.data.legal.reason) == (ALICE, "no contract")
    assert info.data.security.requested_at is None
    assert not [m for m in bot.slack.visible(BOB) if "Clearance" in m.text]


async def test_the_approval_rules_hold_for_every_workflow_that_asks_for_one(
    flows: Bot,
) -> None:
    bot = flows
    none = await bot.slack.slash_command(RITA, "2.3", command="/release")
    assert ":warning: name at least one approver" in none.json["text"]
    own = await bot.slack.slash_command(RITA, f"{at(RITA)} 2.3", command="/release")
    assert ":warning: you cannot approve your own request" in own.json["text"]
    with pytest.raises(ApprovalRuleError, match="each approver can be named only once"):
        await bot.service.engine.new_workflow(
            Clearance(requester=RITA, legal_team=[ALICE, ALICE], security_team=[BOB])
        )
    with pytest.raises(ApprovalRuleError, match=r"the quorum \(3\) is more than the 2"):
        await bot.service.engine.new_workflow(
            Release(requester=RITA, approvers=[ALICE, BOB], version="1", quorum=3)
        )
    assert await bot.service.engine.db.list_workflows() == []  # type: ignore[attr-defined]


# --- notify ----------------------------------------------------------------------------------


@pytest.mark.parametrize("to", [RITA, CHANNEL], ids=["dm", "channel"])
async def test_a_notification_is_posted_once_across_retries(flows: Bot, to: str) -> None:
    """Slack fails more often than the client retries: the step fails, the engine runs it
    again, and the message is there once."""
    bot = flows
    bot.slack.fail("chat.postMessage", status=500, times=4)
    wid = await bot.service.engine.new_workflow(Announcement(to=to, text="maintenance at noon"))
    await poll_status(bot, wid, "finished", timeout=30)
    posted = [
        m
        for m in bot.slack.visible(RITA, None if to == RITA else CHANNEL)
        if "maintenance at noon" in m.text
    ]
    assert len(posted) == 1
    assert bot.slack.errors_of("chat.postMessage") == ["internal_error"] * 4
    assert len(bot.slack.calls_of("chat.postMessage")) == 5  # the client's 4, the retry's 1
    # Only the DM, whose first run began posting, is searched (im:history); a channel never.
    assert len(bot.slack.calls_of("conversations.history")) == (1 if to == RITA else 0)


async def test_a_notification_to_a_channel_the_bot_is_not_in_says_so(flows: Bot) -> None:
    bot = flows
    bot.slack.add_channel("C0RANDOM", "random", member=False)
    wid = await bot.service.engine.new_workflow(Announcement(to="C0RANDOM", text="hello"))

    async def refused() -> bool:
        error = (await bot.service.engine.get(wid)).error or ""
        return "cannot post in C0RANDOM: the bot is not a member of it" in error

    await poll(refused, 15, "the step did not fail with not_in_channel named")
    assert bot.slack.errors_of("chat.postMessage") == ["not_in_channel"]
    assert await bot.status(wid) != "failed"  # retried: someone may invite the bot


# --- webhook ---------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as found:
        yield found


@pytest.fixture
async def webhooks() -> AsyncIterator[Webhooks]:
    service = Webhooks(SECRET)
    yield service
    await service.close()


async def test_a_webhook_is_retried_on_5xx_and_delivered_once(
    make_kit: KitFactory, receiver: Receiver, webhooks: Webhooks
) -> None:
    receiver.statuses = [500, 500]
    failures = Failures()
    kit = await make_kit(Delivery, services=[webhooks, failures], max_attempts=5)
    wid = await kit.engine.new_workflow(Delivery(url=receiver.url, payload={"version": "2.3"}))
    await kit.drain()
    assert len(receiver.seen) == 1
    info = await kit.engine.get(wid)
    assert info.status != "failed"
    assert f"webhook to {receiver.url}: answered 500: try later" in (info.error or "")
    await kit.advance(kit.engine.retry_max)
    await kit.advance(kit.engine.retry_max)
    info = await kit.engine.get(wid)
    assert (info.status, info.output) == ("finished", "delivered")
    key = f"{wid}:deliver"
    assert receiver.seen == [(key, True)] * 3  # the same key every time, always signed
    assert receiver.accepted == {key: {"version": "2.3"}}
    await kit.advance(kit.engine.retry_max)
    assert len(receiver.seen) == 3  # delivered: never sent again
    assert failures.told == []


async def test_a_webhook_refused_with_4xx_fails_at_once(
    make_kit: KitFactory, receiver: Receiver, webhooks: Webhooks
) -> None:
    receiver.statuses = [400]
    failures = Failures()
    kit = await make_kit(Delivery, services=[webhooks, failures], max_attempts=5)
    wid = await kit.engine.new_workflow(Delivery(url=receiver.url, payload={"a": 1}))
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert f"webhook to {receiver.url}: refused with 400" in (info.error or "")
    assert failures.told == [info.error]
    await kit.advance(kit.engine.retry_max)
    assert len(receiver.seen) == 1  # not retried


async def test_a_webhook_to_a_receiver_that_is_down_fails_after_the_last_attempt(
    make_kit: KitFactory, webhooks: Webhooks
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    failures = Failures()
    kit = await make_kit(Delivery, services=[webhooks, failures], max_attempts=3)
    wid = await kit.engine.new_workflow(Delivery(url=url, payload={"a": 1}))
    await kit.drain()
    await kit.advance(kit.engine.retry_max)
    info = await kit.engine.get(wid)
    assert info.status != "failed"  # two attempts so far
    assert f"webhook to {url}: cannot reach it" in (info.error or "")
    await kit.advance(kit.engine.retry_max)
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert "failed 3 times: WebhookUnavailable: webhook to " + url in (info.error or "")
    assert failures.told == [info.error]


async def test_a_webhook_without_a_secret_fails_at_once(make_kit: KitFactory) -> None:
    unsigned = Webhooks("")
    try:
        kit = await make_kit(Delivery, services=[unsigned, Failures()])
        wid = await kit.engine.new_workflow(Delivery(url="http://127.0.0.1:9/", payload={}))
        await kit.drain()
        info = await kit.engine.get(wid)
        assert info.status == "failed"
        assert "no secret to sign it with (set WEBHOOK_SECRET" in (info.error or "")
    finally:
        await unsigned.close()


async def test_the_bot_delivers_with_its_secret_and_closes_its_session(
    tmp_path: Path, receiver: Receiver
) -> None:
    """WEBHOOK_SECRET signs, one session serves the process, and closing the bot closes it."""
    async with (
        standin(commands=["/approval", "/release"]) as slack,
        running_bot(
            slack, f"sqlite:///{tmp_path / 'bot.db'}", blueprints=BLUEPRINTS, webhook_secret=SECRET
        ) as bot,
    ):
        service = bot.service.engine.services[Webhooks]
        assert isinstance(service, Webhooks)
        wid = await bot.service.engine.new_workflow(Delivery(url=receiver.url, payload={"n": 1}))
        await poll_status(bot, wid, "finished")
        session = service.session
        assert not session.closed
    assert receiver.accepted == {f"{wid}:deliver": {"n": 1}}
    assert session.closed


def test_verify_checks_the_signature_like_slack() -> None:
    body = b'{"a":1}'
    now = 1_700_000_000
    headers = {TIMESTAMP: str(now), SIGNATURE: sign(SECRET, now, body)}
    assert verify(SECRET, headers, body, now=now + 299)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify(SECRET, lowered, body, now=now)  # header names in any case
    assert not verify(SECRET, headers, b'{"a":2}', now=now)  # another body
    assert not verify("other-secret", headers, body, now=now)
    assert not verify(SECRET, headers, body, now=now + 301)  # replayed too late
    assert not verify(SECRET, headers, body, now=now - 301)
    assert not verify(SECRET, {SIGNATURE: headers[SIGNATURE]}, body, now=now)
    assert not verify(SECRET, {**headers, TIMESTAMP: "soon"}, body, now=now)
    stamped = f"v0:{now}:".encode() + body  # what Slack's scheme signs
    expected = "v0=" + hmac.new(SECRET.encode(), stamped, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE] == expected
    assert time.time() > now  # the default `now` is the clock: this old request is refused
    assert not verify(SECRET, headers, body)
