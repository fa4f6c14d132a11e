"""Work done at most once at a time per key, bursts of requests for it coalesced.

Refreshing what a person sees (their App Home) is asked for whenever something of theirs
changes, and a burst of changes (three approvals landing together, a page of requests
timing out) asks many times within a moment. Each refresh reads the latest state, so one
in flight makes every request that arrives meanwhile the same request: it is remembered,
and exactly one more run follows the one in flight. Nothing queues per change, and no two
runs for one key overlap (their answers could land out of order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("bot.coalesce")

Work = Callable[[str, bool], Awaitable[None]]
"""`work(key, urgent)`: `urgent` when any of the requests it serves was."""


class Coalescer:
    """`request(key)` runs `work(key, urgent)` soon, in a task of its own: at once when no
    run for `key` is in flight, else once more after it (however many requests came)."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: dict[str, bool] = {}  # key -> whether a request meanwhile was urgent
        self.runs = 0

    def request(self, key: str, *, urgent: bool = False) -> None:
        if key in self._running:
            self._again[key] = self._again.get(key, False) or urgent
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key, urgent))

    def in_flight(self, key: str) -> bool:
        return key in self._running

    async def _run(self, key: str, urgent: bool) -> None:
        try:
            while True:
                self.runs += 1
                try:
                    await self.work(key, urgent)
                except Exception:
                    log.exception("refreshing %s failed", key)
                if key not in self._again:
                    return
                urgent = self._again.pop(key)
        finally:
            del self._running[key]

    async def idle(self) -> None:
        """Until nothing is in flight (what follows a run included)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._again.clear()
