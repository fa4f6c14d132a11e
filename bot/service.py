"""Wiring: settings -> Slack client, the blueprints (bot.loading), engine, resumer, Bolt app."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import commands
from bot.blueprint import Parts
from bot.loading import Blueprints, load_blueprints
from bot.metrics import PrometheusObserver
from bot.priority import RequestsFirst
from bot.ratelimit import Limiter
from bot.settings import Settings, SettingsError
from bot.slack import make_client, our_rate
from callbacks.slack import Posts
from workflows import DatabaseUnavailable, Engine
from workflows.resumer import SchedulerResumer
from workflows.store import SQLStore

log = logging.getLogger("bot.service")


class _GivenClient(logging.Filter):
    """Bolt warns that `SLACK_BOT_TOKEN` "will be unused" whenever it is in the environment
    and a client is given too, which is how the bot always builds its app: at every start,
    before anything worth reading."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well")


logging.getLogger("slack_bolt.AsyncApp").addFilter(_GivenClient())


@dataclass
class Service:
    settings: Settings
    client: AsyncWebClient
    engine: Engine
    app: AsyncApp
    metrics: PrometheusObserver
    requests_first: RequestsFirst
    blueprints: Blueprints

    async def start(self, *, check_slack: bool = False) -> None:
        """Open the database (migrating it) and start the engine. `check_slack`: first ask
        Slack who the token belongs to, so a process that could never post stops here,
        with one line naming the setting, rather than failing at every request."""
        # One connection pool for every Web API call (without it, slack_sdk opens and
        # closes a connection per call).
        self.client.session = aiohttp.ClientSession()
        try:
            identity = await self._identify() if check_slack else None
            try:
                await self.engine.start()
            except DatabaseUnavailable as e:
                raise SettingsError(f"DATABASE_URL: {e}") from None
        except BaseException:
            await self._close_session()
            raise
        if identity is not None:
            log.info("connected to %s as @%s", *identity)
        # Everything start-up created (modules, schemas, the app) lives as long as the
        # process: keep it out of the garbage collector's full passes, which otherwise
        # scan it all and stall every request in flight (~200 ms measured).
        gc.freeze()

    async def _identify(self) -> tuple[str, str]:
        """Slack's `auth.test`: the team and the bot's name, or why the token cannot work."""
        try:
            answer = await self.client.auth_test()
        except SlackApiError as e:
            error = e.response.get("error") if isinstance(e.response.data, dict) else None
            if e.response.status_code >= 500:
                raise SettingsError(
                    f"Slack answered auth.test with HTTP {e.response.status_code} ({error}); "
                    "try again later"
                ) from None
            raise SettingsError(f"SLACK_BOT_TOKEN was refused by Slack ({error})") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise SettingsError(
                f"cannot reach Slack at {self.client.base_url} ({e or type(e).__name__}); "
                "check SLACK_API_URL and the network"
            ) from None
        return str(answer.get("team", "")), str(answer.get("user", ""))

    async def close(self) -> None:
        await self.engine.close()
        for service in self.engine.services.values():  # their sessions, connections...
            close = getattr(service, "close", None)
            if inspect.iscoroutinefunction(close):
                await close()
        await self._close_session()

    async def _close_session(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None

    async def healthy(self, timeout: float = 2.0) -> bool:
        try:
            await asyncio.wait_for(self.engine.db.ping(), timeout)
        except Exception:
            return False
        return True


def build(
    settings: Settings,
    *,
    sweep_interval: float | None = None,
    resumer: SchedulerResumer | None = None,
    blueprints: Blueprints | None = None,
) -> Service:
    """The bot for `settings`, with the blueprints BLUEPRINTS names (or `blueprints`,
    already loaded): their workflows, wait managers and services in the engine, their
    launches and listeners in the app. Nothing is started."""
    blueprints = blueprints or load_blueprints(settings.blueprints)
    limiter = Limiter(
        our_rate, minute=settings.slack_minute_seconds, share=settings.slack_rate_share
    )
    client = make_client(settings.slack_bot_token, settings.slack_api_url, limiter=limiter)
    requests_first = RequestsFirst()
    parts = Parts(settings, client, Posts(client), requests_first)
    metrics = PrometheusObserver()
    engine = Engine(
        db=SQLStore(settings.database_url, fsync_steps=settings.fsync_steps),
        workflows=blueprints.workflows,
        callbacks=blueprints.callbacks(parts),
        resumer=resumer
        or SchedulerResumer(
            sweep_interval=sweep_interval or settings.sweep_interval_seconds,
            before_execution=requests_first.wait,
        ),
        lease=timedelta(seconds=settings.workflow_lease_seconds),
        services=blueprints.services(parts),
        observer=metrics,
    )
    parts.posts.attach(engine.db)  # its records of what was posted live beside the workflows
    app = AsyncApp(
        signing_secret=settings.slack_signing_secret or None,
        client=client,
        request_verification_enabled=not settings.socket_mode,
        # Listeners return right after acknowledging (their follow-up work is background
        # work, bot.priority), so Bolt answers Slack then, without polling for the ack.
        process_before_response=True,
    )
    commands.register(app, engine, requests_first, blueprints.commands(), settings)
    blueprints.listen(app, engine, parts)
    return Service(settings, client, engine, app, metrics, requests_first, blueprints)
