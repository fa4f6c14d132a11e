"""Socket Mode: the same app, reached over a websocket speaking Slack's envelope protocol
(hello, envelopes with `envelope_id`, acknowledgements carrying the response payload)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot import messages
from bot.sandbox.slack import SlackStandin
from bot.server import serve
from bot.service import build
from tests.processes import poll
from tests.slackbot import ALICE, APP_TOKEN, RITA, at, settings_for


async def test_approval_over_socket_mode(slack: SlackStandin, tmp_path: Path) -> None:
    settings = settings_for(
        slack,
        f"sqlite:///{tmp_path / 'bot.db'}",
        slack_app_token=APP_TOKEN,
        slack_signing_secret="",
    )
    settings.require_slack()
    assert settings.socket_mode
    service = build(settings, sweep_interval=0.1)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(service, host="127.0.0.1", port=0, stop=stop))
    try:
        await poll(lambda: slack.socket_connected or server.done(), 15, "the bot did not connect")
        assert not server.done()
        answer = await slack.slash_command(RITA, f"{at(ALICE)} Over the socket")
        assert "Approval request sent" in answer.json["text"]
        await poll(lambda: bool(slack.visible(ALICE)), 15, "alice was not asked")
        (to_alice,) = slack.visible(ALICE)
        await slack.click(ALICE, to_alice, messages.DENY_ACTION)
        await poll(lambda: bool(slack.open_views(ALICE)), 10, "the modal did not open")
        (modal,) = slack.open_views(ALICE)
        await slack.submit_view(
            ALICE, modal, {messages.REASON_BLOCK: {messages.REASON_INPUT: "Sockets are scary"}}
        )
        await poll(
            lambda: any("denied" in m.text for m in slack.visible(RITA)),
            15,
            "the requester was not told",
        )
        assert any("Sockets are scary" in m.text for m in slack.visible(RITA))
        await poll(lambda: to_alice.deleted, 10, "the request was not deleted")
        await slack.open_home(ALICE)  # an event, as an events_api envelope: published
        await poll(lambda: slack.home(ALICE) is not None, 10, "the event was lost")
        assert "You denied" in str(slack.home(ALICE).view)  # type: ignore[union-attr]
        assert slack.app_url == ""  # nothing went over HTTP
    finally:
        stop.set()
        await server
