"""`/access` as a real process against the strict built-in Slack and a real receiver:
granted once and revoked once per idempotency key, whether the time runs out while no
process runs or the requester presses I'm done while the revoke is in flight, with SIGKILL
between grant and revoke."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import messages
from bot.sandbox.slack import Message, SlackStandin
from tests.processes import BotProcess, poll
from tests.receiver import SECRET, Receiver, running_receiver
from tests.slackbot import ALICE, RITA, at, bot_process_env


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as found:
        yield found


@pytest.fixture
def env(slack: SlackStandin, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    values = bot_process_env(slack, f"sqlite:///{tmp_path / 'bot.db'}")
    values.update(
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_RECEIVER=receiver.base,
        ACCESS_MIN_DURATION="1s",
        WORKFLOW_LEASE_SECONDS="3",  # a killed process's claim lapses soon
    )
    return values


def dms(slack: SlackStandin, user: str, contains: str) -> list[Message]:
    return [m for m in slack.visible(user) if not m.ephemeral_to and contains in m.text]


async def granted(slack: SlackStandin, receiver: Receiver, duration: str) -> None:
    """RITA asks for billing for `duration`, ALICE approves, the grant is accepted."""
    answer = await slack.slash_command(
        RITA,
        f'resource=billing duration={duration} reason="INC-42 on call" approvers={at(ALICE)}',
        command="/access",
    )
    assert "Access to *billing*" in answer.json["text"], answer.json
    await poll(lambda: dms(slack, ALICE, "Approval requested"), 15, "alice was not asked")
    (to_alice,) = dms(slack, ALICE, "Approval requested")
    assert "Access to *billing* for" in to_alice.text
    assert "INC-42 on call" in to_alice.text
    await slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await poll(lambda: receiver.accepted_ending("grant"), 15, "the grant was not delivered")


async def test_time_up_while_no_process_runs_revokes_once_after_restart(
    slack: SlackStandin, env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.ready()
    await granted(slack, receiver, "3s")
    bot.kill()  # right after the grant was accepted: maybe before the bot recorded it
    ends = time.monotonic() + 3.5
    await poll(lambda: time.monotonic() > ends, 10, "the clock did not move")
    assert receiver.accepted_ending("revoke") == []
    restarted = BotProcess(env, tmp_path / "bot.log")
    await restarted.ready()
    await poll(lambda: dms(slack, RITA, "revoked"), 20, "the requester was not told")
    assert await restarted.stop() == 0
    (grant,) = receiver.accepted_ending("grant")
    (revoke,) = receiver.accepted_ending("revoke")
    assert grant["action"] == "grant"
    assert revoke["action"] == "revoke"
    assert grant["user"] == RITA
    assert grant["seconds"] == 3
    assert grant["approved_by"] == [ALICE]
    assert all(signed for _, signed in receiver.seen)
    (told,) = dms(slack, RITA, "revoked")
    assert "its time is up" in told.text
    assert dms(slack, RITA, "is granted") == []  # the I'm done DM went with the wait


async def test_im_done_with_a_sigkill_mid_revoke_still_revokes_once(
    slack: SlackStandin, env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.ready()
    await granted(slack, receiver, "1h")
    await poll(lambda: dms(slack, RITA, "is granted"), 15, "the requester was not told")
    (granted_dm,) = dms(slack, RITA, "is granted")
    assert "Press *I'm done*" in granted_dm.text
    receiver.held = asyncio.Event()  # the revoke arrives and gets no answer
    receiver.arrived.clear()
    pressed = await slack.click(RITA, granted_dm, messages.BUTTON_ACTION)
    assert pressed.status == 200
    await asyncio.wait_for(receiver.arrived.wait(), 15)
    bot.kill()
    held, receiver.held = receiver.held, None
    held.set()  # the first attempt's request ends; the killed bot never hears its answer
    restarted = BotProcess(env, tmp_path / "bot.log")
    await restarted.ready()
    await poll(lambda: dms(slack, RITA, "revoked"), 20, "the requester was not told")
    assert await restarted.stop() == 0
    (revoke_key,) = [k for k in receiver.deliveries if k.endswith(":revoke")]
    assert receiver.deliveries[revoke_key] == 2  # sent again after the restart...
    assert len(receiver.accepted_ending("revoke")) == 1  # ...accepted once, by its key
    assert len(receiver.accepted_ending("grant")) == 1
    (told,) = dms(slack, RITA, "revoked")
    assert "as you asked" in told.text
    assert granted_dm.deleted
