"""A user's webhook receiver on a real local aiohttp server, for the tests: it checks each
request's signature with `verify`, answers scripted statuses (then 200), accepts each
idempotency key's body once, and can hold requests unanswered (to kill the bot mid-call)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.routines.webhook import IDEMPOTENCY_KEY, verify
from tests.processes import free_port

SECRET = "webhook-test-secret"


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (Idempotency-Key, signed)
    accepted: dict[str, Any] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)  # key -> requests that came
    url: str = ""
    """`{base}/hook`; `{base}/hooks/NAME` takes requests too (a receiver base URL)."""
    base: str = ""
    held: asyncio.Event | None = None
    """While set to an unset Event, requests wait for it (unanswered) before anything."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get(IDEMPOTENCY_KEY, "")
        self.deliveries[key] = self.deliveries.get(key, 0) + 1
        self.arrived.set()
        if self.held is not None:
            await self.held.wait()
        signed = verify(SECRET, request.headers, body)
        self.seen.append((key, signed))
        if not signed:
            return web.Response(status=401, text="bad signature")
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200 and key not in self.accepted:
            self.accepted[key] = json.loads(body)
        return web.Response(status=status, text="try later" if status >= 500 else "")

    def accepted_ending(self, suffix: str) -> list[Any]:
        """The bodies accepted under keys ending in `:suffix` (a step's name)."""
        return [body for key, body in self.accepted.items() if key.endswith(f":{suffix}")]


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    app.router.add_post("/hooks/{name}", found.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.base = f"http://127.0.0.1:{port}/hooks/"
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        if found.held is not None:
            found.held.set()
        await runner.cleanup()
