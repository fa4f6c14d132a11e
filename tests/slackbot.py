"""The bot under test: the real Bolt app over real HTTP, talking to the Slack stand-in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.slack import Message, SlackStandin
from bot.server import web_app
from bot.service import Service, build
from bot.settings import Settings
from tests.processes import ROOT, free_port, poll

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
RITA, ALICE, BOB, CAROL, EVE = "U0RITA", "U0ALICE", "U0BOB", "U0CAROL", "U0EVE"
USERS = {RITA: "rita", ALICE: "alice", BOB: "bob", CAROL: "carol", EVE: "eve"}


def at(user: str) -> str:
    """A mention as Slack delivers it with escaping on."""
    return f"<@{user}|{USERS[user]}>"


@dataclass
class Bot:
    slack: SlackStandin
    service: Service
    url: str

    async def dm(self, user: str, contains: str = "", timeout: float = 15.0) -> Message:
        """Wait for a live bot message in `user`'s DM containing `contains`."""
        found: list[Message] = []

        def check() -> bool:
            found[:] = [
                m for m in self.slack.visible(user) if not m.ephemeral_to and contains in m.text
            ]
            return bool(found)

        await poll(check, timeout, f"no DM to {user} containing {contains!r}")
        return found[-1]

    async def request_dm(self, user: str) -> Message:
        return await self.dm(user, "Approval requested")

    async def gone(self, message: Message, timeout: float = 15.0) -> None:
        await poll(lambda: message.deleted, timeout, f"message {message.ts} was not deleted")

    def ephemeral_texts(self, user: str) -> list[str]:
        return [m.text for m in self.slack.ephemerals(user)]

    async def status(self, workflow_id: str) -> str:
        return (await self.service.engine.db.get(workflow_id)).status

    async def only_workflow(self) -> str:
        (record,) = await self.service.engine.db.list_workflows()  # type: ignore[attr-defined]
        return str(record.id)


def settings_for(slack: SlackStandin, database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "database_url": database_url,
        "slack_api_url": slack.api_url,
        "port": 0,
        **extra,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def standin(**options: Any) -> AsyncIterator[SlackStandin]:
    slack = SlackStandin(
        signing_secret=SIGNING_SECRET,
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        users=USERS,
        **options,
    )
    await slack.start()
    try:
        yield slack
    finally:
        await slack.close()


@contextlib.asynccontextmanager
async def running_bot(
    slack: SlackStandin, database_url: str, **settings: Any
) -> AsyncIterator[Bot]:
    """The bot served over HTTP on a free port, wired to `slack` (`settings`: more of
    them, e.g. `blueprints=`)."""
    service = build(settings_for(slack, database_url, **settings), sweep_interval=0.1)
    await service.start()
    runner = web.AppRunner(web_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    slack.app_url = f"{url}/slack/events"
    try:
        yield Bot(slack, service, url)
    finally:
        await runner.cleanup()
        await service.close()


def bot_process_env(
    slack: SlackStandin, database_url: str, log_level: str = "INFO"
) -> dict[str, str]:
    """The environment of a `python -m bot` process wired to `slack` (on a free port,
    which `slack` will send its requests to)."""
    port = free_port()
    slack.app_url = f"http://127.0.0.1:{port}/slack/events"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        PORT=str(port),
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        LOG_LEVEL=log_level,
    )
    return env
