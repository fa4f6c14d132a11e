"""Slack requests before background work.

Acknowledging a request is the one thing with a hard deadline (Slack gives up after three
seconds). Executions can wait a little: an execution about to start waits until no request
has been in flight for `quiet` seconds, up to `max_wait` seconds in all. A burst of commands
or clicks is acknowledged first and the work it created runs right after; steady traffic
delays executions by at most `max_wait`, never starves them. Both transports count their
requests (`serving`): the HTTP endpoint and the Socket Mode handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger("bot.priority")


class RequestsFirst:
    def __init__(self, quiet: float = 0.02, max_wait: float = 0.5) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self.in_flight = 0
        self._last = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Around one Slack request, until its acknowledgement is sent."""
        self.in_flight += 1
        self._last = time.monotonic()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._last = time.monotonic()

    async def wait(self) -> None:
        """Before background work: let the requests in flight, and a burst's stragglers,
        be answered first."""
        deadline = time.monotonic() + self.max_wait
        while True:
            now = time.monotonic()
            idle = now - self._last
            if (not self.in_flight and idle >= self.quiet) or now >= deadline:
                return
            await asyncio.sleep(min(max(self.quiet - idle, 0.005), deadline - now))

    def later(self, work: Coroutine[Any, Any, Any], *, urgent: bool = False) -> None:
        """Run `work` after the acknowledgement, in the background (Bolt answers Slack when
        the listener returns). Unless `urgent`, it first lets the requests in flight be
        answered."""

        async def run() -> None:
            try:
                if not urgent:
                    await self.wait()
                await work
            except Exception:
                log.exception("work after an acknowledgement failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
