"""Slack requests before background work (bot.priority): an execution about to start waits
while requests are in flight, and never longer than the bound."""

from __future__ import annotations

import asyncio
import time

from bot.priority import RequestsFirst


async def test_background_work_waits_for_requests_in_flight() -> None:
    gate = RequestsFirst(quiet=0.01, max_wait=5.0)
    request_done = asyncio.Event()

    async def request() -> None:
        async with gate.serving():
            await request_done.wait()

    serving = asyncio.create_task(request())
    await asyncio.sleep(0)
    assert gate.in_flight == 1
    waiting = asyncio.create_task(gate.wait())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()  # held back while the request is in flight
    request_done.set()
    await serving
    await asyncio.wait_for(waiting, 2.0)
    assert gate.in_flight == 0


async def test_the_wait_is_bounded_under_steady_traffic() -> None:
    gate = RequestsFirst(quiet=0.01, max_wait=0.1)
    async with gate.serving():
        started = time.monotonic()
        await asyncio.wait_for(gate.wait(), 2.0)
        assert time.monotonic() - started >= 0.09


async def test_no_wait_when_idle() -> None:
    gate = RequestsFirst(quiet=0.01, max_wait=5.0)
    await asyncio.wait_for(gate.wait(), 0.5)
