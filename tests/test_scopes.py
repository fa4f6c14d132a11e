"""A scope missing from the app breaks the flow that needs it, as in a real workspace: the
real bot against a built-in Slack whose token lacks one of the manifest's scopes."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from bot.slackapi import bot_scopes, read_manifest
from tests.processes import poll
from tests.slackbot import ALICE, RITA, Bot, at, running_bot, standin

SCOPES = bot_scopes(read_manifest())


def without(scope: str) -> list[str]:
    assert scope in SCOPES
    return [s for s in SCOPES if s != scope]


async def approve_while_the_outcome_post_fails(bot: Bot) -> None:
    """Alice approves, and Slack fails the outcome DM more often than the client retries:
    the step runs again, and must first search the DM for a notice already sent."""
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Deploy api v2.3")
    to_alice = await bot.request_dm(ALICE)
    bot.slack.fail("chat.postMessage", status=500, times=4, channel=RITA)  # the outcome
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await bot.gone(to_alice)  # the decision itself needs no history


async def test_without_im_history_a_retried_outcome_never_reaches_the_requester(
    tmp_path: Path,
) -> None:
    async with (
        standin(scopes=without("im:history")) as slack,
        running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}") as bot,
    ):
        await approve_while_the_outcome_post_fails(bot)
        # Slack refuses the search, the step fails and is retried, and is refused again.
        await poll(
            lambda: slack.errors_of("conversations.history").count("missing_scope") >= 2,
            15,
            "conversations.history was not refused twice",
        )
        assert set(slack.errors_of("conversations.history")) == {"missing_scope"}
        assert [m for m in slack.visible(RITA) if not m.ephemeral_to] == []
        assert await bot.status(await bot.only_workflow()) != "finished"


async def test_with_im_history_the_same_flow_tells_the_requester_once(tmp_path: Path) -> None:
    async with (
        standin() as slack,
        running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}") as bot,
    ):
        await approve_while_the_outcome_post_fails(bot)
        told = await bot.dm(RITA, "approved", timeout=30)
        assert slack.errors_of("conversations.history") == []
        assert len(slack.calls_of("conversations.history")) == 1
        assert [m for m in slack.visible(RITA) if not m.ephemeral_to] == [told]


async def test_without_chat_write_no_approver_is_asked(tmp_path: Path) -> None:
    async with (
        standin(scopes=without("chat:write")) as slack,
        running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}") as bot,
    ):
        answer = await slack.slash_command(RITA, f"{at(ALICE)} Deploy api v2.3")
        assert "Approval request sent" in answer.json["text"]  # an acknowledgement, no call
        await poll(
            lambda: slack.errors_of("chat.postMessage").count("missing_scope") >= 2,
            15,
            "chat.postMessage was not refused twice",
        )
        assert set(slack.errors_of("chat.postMessage")) == {"missing_scope"}
        assert slack.visible(ALICE) == []
        assert [m for m in slack.workspace.messages if not m.ephemeral_to] == []
        # The first post (the card) is refused, and the step is retried, never skipped.
        assert await bot.status(await bot.only_workflow()) == "running"
