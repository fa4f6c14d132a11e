"""Serving the app: HTTP (aiohttp: `POST /slack/events`, `GET /healthz`) or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.incoming import bolt_request
from bot.service import Service

log = logging.getLogger("bot.server")


def web_app(service: Service) -> web.Application:
    """The aiohttp application: Slack's endpoint, a health check and metrics."""
    app = web.Application()

    async def slack_events(request: web.Request) -> web.Response:
        """Bolt's own aiohttp endpoint, with the payload decoded by `bot.incoming`; counted
        as in flight until answered (see bot.priority)."""
        async with service.requests_first.serving():
            bolt_response = await service.app.async_dispatch(await bolt_request(request))
            return await to_aiohttp_response(bolt_response)

    app.router.add_post("/slack/events", slack_events)

    async def healthz(request: web.Request) -> web.Response:
        if await service.healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "database unavailable"}, status=503)

    async def metrics(request: web.Request) -> web.Response:
        return await service.metrics.handler(service.engine)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


class _SocketModeHandler(AsyncSocketModeHandler):
    """Counts each Socket Mode request as in flight until acknowledged (see bot.priority)."""

    def __init__(self, service: Service, app_token: str) -> None:
        super().__init__(service.app, app_token)
        self._requests_first = service.requests_first

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        async with self._requests_first.serving():
            await super().handle(client, req)  # type: ignore[arg-type]


async def serve(
    service: Service,
    host: str = "0.0.0.0",
    port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then stop gracefully: executions in flight
    finish their step and release their leases."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start(check_slack=True)
    runner = web.AppRunner(web_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, service.settings.port if port is None else port)
    await site.start()
    socket_handler = None
    if service.settings.socket_mode:
        socket_handler = _SocketModeHandler(service, service.settings.slack_app_token)
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode; /healthz on port %s", site.name)
    else:
        log.info("serving Slack requests on %s/slack/events", site.name)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
        await service.close()
