"""The bot's limiter on its own (bot.ratelimit): waiting calls are served urgent first, and
a 429's Retry-After holds back every caller of that budget. Through the real app and the
built-in Slack's tiers in tests/test_slack_limits.py."""

from __future__ import annotations

import asyncio
import time

from bot.ratelimit import Limiter, Rate
from callbacks.priority import BACKGROUND, URGENT, background, current_priority


def one_a_tick(key: str) -> Rate | None:
    """A budget of 20 calls a second (a 'minute' of 1 s, 20 calls in it), no burst."""
    return Rate(per_minute=20, burst=1) if key == "chat.delete" else None


async def test_urgent_calls_overtake_background_ones() -> None:
    limiter = Limiter(one_a_tick, minute=1.0)
    await limiter.acquire("chat.delete")  # the one token: everyone else waits
    order: list[str] = []

    async def call(name: str, priority: int) -> None:
        await limiter.acquire("chat.delete", priority)
        order.append(name)

    waiting = [asyncio.create_task(call(f"teardown {i}", BACKGROUND)) for i in range(3)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(call("approver DM", URGENT)))
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert order == ["approver DM", "teardown 0", "teardown 1", "teardown 2"]
    assert limiter.waited == {"chat.delete": 4}


async def test_retry_after_holds_back_every_caller() -> None:
    limiter = Limiter(one_a_tick, minute=1.0)
    limiter.pause("chat.delete", 0.5)
    started = time.monotonic()
    done: list[float] = []

    async def call() -> None:
        await limiter.acquire("chat.delete")
        done.append(time.monotonic() - started)

    await asyncio.wait_for(asyncio.gather(*(call() for _ in range(3))), 5)
    assert len(done) == 3
    assert min(done) >= 0.5  # nobody called before Retry-After had passed
    assert limiter.paused == {"chat.delete": 1}


async def test_unlimited_keys_and_the_priority_context() -> None:
    limiter = Limiter(one_a_tick, minute=1.0)
    for _ in range(100):
        await asyncio.wait_for(limiter.acquire("auth.test"), 1)  # no budget: never waits
    assert limiter.waited == {}
    assert current_priority() == URGENT
    with background():
        assert current_priority() == BACKGROUND
    assert current_priority() == URGENT


async def test_a_caller_that_gives_up_does_not_hold_up_the_rest() -> None:
    limiter = Limiter(one_a_tick, minute=1.0)
    await limiter.acquire("chat.delete")
    quitter = asyncio.create_task(limiter.acquire("chat.delete"))
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.wait_for(limiter.acquire("chat.delete"), 2)


async def test_a_call_told_to_come_back_is_served_in_its_turn() -> None:
    """Work that waits elsewhere (a teardown, its due time stored) keeps its place: a call
    arriving later gets a later turn, and one coming back early is told to wait on."""
    limiter = Limiter(one_a_tick, minute=1.0)  # 20 a second: a turn every 50 ms
    assert limiter.now_or_later("chat.delete", "delete 1") is None  # the one token
    first = limiter.now_or_later("chat.delete", "delete 2")
    second = limiter.now_or_later("chat.delete", "delete 3")
    assert first is not None
    assert second is not None
    assert second > first  # behind it
    assert limiter.now_or_later("chat.delete", "delete 3") is not None  # early: not yet
    await asyncio.sleep(first)
    assert limiter.now_or_later("chat.delete", "delete 2") is None  # its turn: served
    # A newcomer does not take the next token ahead of the call holding that turn.
    assert limiter.now_or_later("chat.delete", "delete 4") is not None
    await asyncio.sleep(second - first + 0.01)
    assert limiter.now_or_later("chat.delete", "delete 3") is None
    assert limiter.deferred == {"chat.delete": 3}
