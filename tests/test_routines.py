"""The routines as a user's workflow includes them: approvals (one, and two in sequence)
driven through the real app and the strict built-in Slack, a notification posted once
across retries, and a webhook to a real local aiohttp server that checks its signature."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.routines import ApprovalRuleError
from bot.routines.approval import SETTLED
from tests.processes import poll
from tests.routine_flows import CHANNEL, Clearance, Release
from tests.slackbot import ALICE, BOB, CAROL, RITA, Bot, at, running_bot, standin

BLUEPRINTS = "bot.blueprints.approval,tests.routine_flows"
SECRET = "webhook-test-secret"


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
        lambda: SETTLED in bot.ephemeral_texts(CAROL), 10, "the late click got no explanation"
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
