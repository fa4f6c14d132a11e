"""Wiring: settings -> Slack client, engine, resumer, callback managers, Bolt app."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import actions, commands, messages
from bot.metrics import PrometheusObserver
from bot.outcomes import SlackNotifier
from bot.priority import RequestsFirst
from bot.ratelimit import Limiter
from bot.settings import Settings
from bot.slack import make_client, our_rate
from callbacks import default_callbacks
from callbacks.slack import Posts, SlackActionManager
from callbacks.user_action import WaitForUserAction
from workflows import CallbackRequest, Engine
from workflows.approval import ApprovalRequest, Notifier
from workflows.resumer import SchedulerResumer
from workflows.store import SQLStore


def render_request(request: CallbackRequest, handler: WaitForUserAction) -> dict[str, object]:
    return messages.approval_request(
        request,
        requester=handler.requester,
        text=handler.text,
        deadline=handler.deadline,
        quorum=handler.quorum,
        approvers=handler.panel or len(handler.approvers),
    )


@dataclass
class Service:
    settings: Settings
    client: AsyncWebClient
    engine: Engine
    app: AsyncApp
    metrics: PrometheusObserver
    requests_first: RequestsFirst

    async def start(self) -> None:
        # One connection pool for every Web API call (without it, slack_sdk opens and
        # closes a connection per call).
        self.client.session = aiohttp.ClientSession()
        try:
            await self.engine.start()
        except BaseException:
            await self._close_session()
            raise
        # Everything start-up created (modules, schemas, the app) lives as long as the
        # process: keep it out of the garbage collector's full passes, which otherwise
        # scan it all and stall every request in flight (~200 ms measured).
        gc.freeze()

    async def close(self) -> None:
        await self.engine.close()
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
) -> Service:
    limiter = Limiter(
        our_rate, minute=settings.slack_minute_seconds, share=settings.slack_rate_share
    )
    client = make_client(settings.slack_bot_token, settings.slack_api_url, limiter=limiter)
    requests_first = RequestsFirst()
    posts = Posts(client)
    notifier: Notifier = SlackNotifier(posts)  # checked against the workflow's Protocol
    metrics = PrometheusObserver()
    engine = Engine(
        db=SQLStore(settings.database_url, fsync_steps=settings.fsync_steps),
        workflows=[ApprovalRequest],
        callbacks={
            **default_callbacks(),
            WaitForUserAction.type: SlackActionManager(posts, render_request),
        },
        resumer=resumer
        or SchedulerResumer(
            sweep_interval=sweep_interval or settings.sweep_interval_seconds,
            before_execution=requests_first.wait,
        ),
        lease=timedelta(seconds=settings.workflow_lease_seconds),
        services=[notifier],
        observer=metrics,
    )
    app = AsyncApp(
        signing_secret=settings.slack_signing_secret or None,
        client=client,
        request_verification_enabled=not settings.socket_mode,
        # Listeners return right after acknowledging (their follow-up work is background
        # work, bot.priority), so Bolt answers Slack then, without polling for the ack.
        process_before_response=True,
    )
    commands.register(app, engine, requests_first)
    actions.register(app, engine, requests_first)
    return Service(settings, client, engine, app, metrics, requests_first)
