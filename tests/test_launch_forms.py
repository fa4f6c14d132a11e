"""Launch forms through the real app and the strict built-in Slack, with the shipped
`/deploy`: the modal a command alone opens, Slack's own checks and the model's inline
errors, the inline `key=value` launch, `help`, and the signed webhook once approved."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import messages
from bot.sandbox.inputs import REQUIRED
from bot.sandbox.slack import View
from tests.processes import poll
from tests.receiver import SECRET, Receiver, running_receiver
from tests.slackbot import ALICE, BOB, RITA, Bot, at, running_bot, standin


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as found:
        yield found


@pytest.fixture
async def bot(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Bot]:
    async with (
        standin() as slack,
        running_bot(
            slack,
            f"sqlite:///{tmp_path / 'bot.db'}",
            webhook_secret=SECRET,
            webhook_receiver=receiver.base,
        ) as running,
    ):
        yield running


async def workflows(bot: Bot) -> list[Any]:
    return list(await bot.service.engine.db.list_workflows())  # type: ignore[attr-defined]


async def open_form(bot: Bot, user: str, text: str = "") -> View:
    await bot.slack.slash_command(user, text, command="/deploy")
    await poll(lambda: bot.slack.open_views(user), 10, "the form did not open")
    (form,) = bot.slack.open_views(user)
    return form


def element(form: View, block_id: str) -> dict[str, Any]:
    (block,) = [b for b in form.view["blocks"] if b.get("block_id") == block_id]
    return dict(block["element"])


async def test_the_command_alone_opens_the_form_made_from_the_model(bot: Bot) -> None:
    form = await open_form(bot, RITA)
    assert form.view["title"]["text"] == "Request a deploy"
    inputs = {b["block_id"]: b for b in form.view["blocks"] if b["type"] == "input"}
    assert list(inputs) == ["service", "version", "approvers", "notes"]
    assert inputs["service"]["label"]["text"] == "Service"
    assert [o["value"] for o in inputs["service"]["element"]["options"]] == [
        "api",
        "web",
        "worker",
    ]
    assert inputs["service"]["element"]["type"] == "static_select"
    assert inputs["version"]["hint"]["text"] == "The version or tag to deploy"
    assert inputs["approvers"]["element"]["type"] == "multi_users_select"
    assert inputs["notes"]["element"] == {
        "action_id": "notes",
        "type": "plain_text_input",
        "multiline": True,
        "max_length": 2000,
    }
    assert inputs["notes"]["optional"] is True
    assert inputs["version"]["optional"] is False
    assert await workflows(bot) == []


async def test_bad_form_input_gets_inline_errors_and_starts_nothing(
    bot: Bot, receiver: Receiver
) -> None:
    form = await open_form(bot, RITA)
    # Slack's client refuses an empty required input itself: the app hears nothing.
    missing = await bot.slack.submit_view(
        RITA, form, {"service": {"service": "api"}, "approvers": {"approvers": [ALICE]}}
    )
    assert missing.status == 0
    assert form.errors == {"version": REQUIRED}
    # What only the model knows comes back from the bot, under the input it is about.
    bad = await bot.slack.submit_view(
        RITA,
        form,
        {
            "service": {"service": "api"},
            "version": {"version": "2.3 beta"},
            "approvers": {"approvers": [ALICE]},
        },
    )
    assert bad.status == 200
    assert bad.json["response_action"] == "errors"
    assert list(bad.json["errors"]) == ["version"]
    assert bad.json["errors"]["version"].startswith("A version is one word of letters")
    own = await bot.slack.submit_view(
        RITA,
        form,
        {
            "service": {"service": "web"},
            "version": {"version": "2.3"},
            "approvers": {"approvers": [RITA]},
        },
    )
    assert own.json["errors"] == {
        "approvers": "you cannot approve your own request: name other approvers"
    }
    # An option the select never offered cannot be submitted by a person at all.
    with pytest.raises(ValueError, match="offers no option 'db'"):
        await bot.slack.submit_view(RITA, form, {"service": {"service": "db"}})
    assert not form.closed
    assert await workflows(bot) == []
    assert bot.slack.calls_of("chat.postMessage") == []


async def test_a_submitted_form_starts_the_deploy_and_the_webhook_follows_approval(
    bot: Bot, receiver: Receiver
) -> None:
    form = await open_form(bot, RITA)
    done = await bot.slack.submit_view(
        RITA,
        form,
        {
            "service": {"service": "api"},
            "version": {"version": "2.3"},
            "approvers": {"approvers": [ALICE, BOB]},
            "notes": {"notes": "After the\nfreeze"},
        },
    )
    assert done.json["response_action"] == "update"
    assert "Deploy of *api* 2.3 sent for approval to <@U0ALICE>, <@U0BOB>" in str(done.json["view"])
    to_alice = await bot.request_dm(ALICE)
    assert "Deploy *api* version *2.3*\nAfter the\nfreeze" in to_alice.text
    assert receiver.seen == []  # nothing is deployed before the approval
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    told = await bot.dm(RITA, "rocket")
    assert "approved by <@U0ALICE> and handed over" in told.text
    ((key, body),) = receiver.accepted.items()
    assert key.endswith(":deploy")
    assert receiver.seen == [(key, True)]
    assert body["service"] == "api"
    assert body["version"] == "2.3"
    assert body["requested_by"] == RITA
    assert body["approved_by"] == [ALICE]


async def test_complete_words_start_at_once_and_partial_ones_open_the_rest(bot: Bot) -> None:
    answer = await bot.slack.slash_command(
        RITA, f"service=worker version=7 approvers={at(ALICE)}", command="/deploy"
    )
    assert "Deploy of *worker* 7 sent for approval to <@U0ALICE>" in answer.json["text"]
    assert bot.slack.open_views(RITA) == []
    await bot.request_dm(ALICE)
    (deploy,) = await workflows(bot)
    assert deploy.type == "deploy"

    form = await open_form(bot, RITA, 'version=8 notes="no rush"')
    assert element(form, "version")["initial_value"] == "8"
    assert element(form, "notes")["initial_value"] == "no rush"
    assert "initial_option" not in element(form, "service")
    assert len(await workflows(bot)) == 1


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        ("service=db version=2 approvers=<@U0ALICE>", "`service=db` is not one of the choices"),
        ("service=api version=2 approvers=alice", "`approvers=alice` is not a Slack user"),
        ("service=api colour=red", "there is no field `colour`"),
        (
            "service=api version='2 3' approvers=<@U0ALICE>",
            "`3'` is not `field=value` (a value with spaces goes in double quotes)",
        ),
        ('service=api version="2 3" approvers=<@U0ALICE>', "`version`: A version is one word"),
        ("service=api version=2 approvers=<@U0RITA>", "you cannot approve your own request"),
    ],
)
async def test_bad_words_are_refused_with_the_fields_and_start_nothing(
    bot: Bot, words: str, problem: str
) -> None:
    answer = await bot.slack.slash_command(RITA, words, command="/deploy")
    text = answer.json["text"]
    assert problem in text
    assert "*Fields:*" in text
    assert bot.slack.open_views(RITA) == []
    assert await workflows(bot) == []


async def test_help_lists_the_fields(bot: Bot) -> None:
    answer = await bot.slack.slash_command(RITA, "help", command="/deploy")
    text = answer.json["text"]
    assert "• `service=` Service, one of `api`, `web`, `worker`, required" in text
    assert "• `notes=` Notes, text, optional" in text
    assert "`/deploy service=api version=2.3 approvers=@alice,@bob` starts at once" in text


async def test_a_form_of_a_launch_no_longer_loaded_is_refused_and_starts_nothing(bot: Bot) -> None:
    """A modal opened before an upgrade removed its launch (or a forged one) is answered,
    never crashed on."""
    form = await open_form(bot, RITA)
    form.view["private_metadata"] = '{"launch": "/gone", "channel": "C0GENERAL"}'
    answer = await bot.slack.submit_view(
        RITA,
        form,
        {
            "service": {"service": "api"},
            "version": {"version": "2.3"},
            "approvers": {"approvers": [ALICE]},
        },
    )
    assert answer.json["response_action"] == "update"
    assert "This form is not valid any more." in str(answer.json["view"])
    assert await workflows(bot) == []


async def test_a_form_slack_will_not_open_is_said_even_where_the_bot_is_not(bot: Bot) -> None:
    """The trigger expired: the person is told through the command's response_url, which
    works in a channel the bot is not a member of."""
    bot.slack.add_channel("C0SECRET", "secret", member=False)
    bot.slack.fail("views.open", status=200, error="expired_trigger_id")
    await bot.slack.slash_command(RITA, "", command="/deploy", channel="C0SECRET")
    await poll(
        lambda: any("Slack could not open the form" in t for t in bot.ephemeral_texts(RITA)),
        10,
        "the requester was not told",
    )
    assert bot.slack.open_views(RITA) == []
    assert await workflows(bot) == []


async def test_a_form_stored_late_turns_into_its_answer(bot: Bot, tmp_path: Path) -> None:
    """The database is slow (another process holds SQLite's write lock past Slack's
    deadline): the form says it is recording, then shows what happened once stored."""
    form = await open_form(bot, RITA)
    holder = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        done = await bot.slack.submit_view(
            RITA,
            form,
            {
                "service": {"service": "api"},
                "version": {"version": "2.4"},
                "approvers": {"approvers": [ALICE]},
                "notes": {"notes": ""},
            },
        )
        assert "Recording your request…" in str(done.json["view"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    def answered() -> bool:
        return any(
            "Deploy of *api* 2.4 sent for approval to <@U0ALICE>" in str(v.view)
            for v in bot.slack.open_views(RITA)
        )

    await poll(answered, 10, f"the form never showed its answer: {bot.slack.open_views(RITA)}")
    assert len(await workflows(bot)) == 1
    assert "Deploy *api* version *2.4*" in (await bot.request_dm(ALICE)).text
