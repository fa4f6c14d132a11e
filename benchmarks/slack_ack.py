"""Acknowledgement latency of the real bot over real HTTP: 50 concurrent slash commands,
then 50 concurrent button clicks, sent and signed by the Slack stand-in. Prints p50, p99
and max in milliseconds. Slack's limit is 3,000 ms.

The bot runs as in production, in a process of its own (`python -m bot`); this process
plays Slack (it sends the requests and answers the bot's Web API calls). Each burst is
built and signed first, then released at once, so no answer waits for this process to
build the rest of the burst before it is read. Two clocks: "on the wire" runs from the
moment a request's body is written to the socket to the moment the response arrives, as
Slack counts; "from the release" also includes this process sending the other requests of
the burst.

    uv run python -m benchmarks.slack_ack [--concurrency 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot import messages
from bot.sandbox.slack import SentRequest, SlackStandin
from tests.processes import BotProcess, poll
from tests.slackbot import ALICE, RITA, at, bot_process_env, standin

MINUTE = 1.0


async def answered(call: Callable[[], Awaitable[SentRequest]]) -> float:
    answer = await call()
    if answer.status != 200:
        raise RuntimeError(f"request failed: {answer.status} {answer.body}")
    return time.perf_counter()


async def burst(
    slack: SlackStandin, wire: WireClock, calls: list[Callable[[], Awaitable[SentRequest]]]
) -> tuple[list[float], list[float]]:
    """Send the requests at once, each built and signed beforehand: milliseconds from the
    release to each answer, and each on the wire."""
    with slack.holding():
        tasks = [asyncio.ensure_future(answered(call)) for call in calls]
    await poll(lambda: slack.held >= len(calls), 30, "the burst was not built")
    wire.samples.clear()
    released = time.perf_counter()
    slack.release_requests()
    return [(at - released) * 1000 for at in await asyncio.gather(*tasks)], list(wire.samples)


class WireClock:
    """aiohttp tracing on the stand-in's client: per request, body sent -> response."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_chunk_sent.append(self._sent)
        self.config.on_request_end.append(self._answered)

    async def _sent(self, session: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.sent = time.perf_counter()

    async def _answered(self, session: Any, ctx: SimpleNamespace, params: Any) -> None:
        if hasattr(ctx, "sent"):
            self.samples.append((time.perf_counter() - ctx.sent) * 1000)


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"{name:<22} n={len(samples):<4} p50={statistics.median(ordered):7.1f} ms  "
        f"p99={p99:7.1f} ms  max={ordered[-1]:7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    n = args.concurrency
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ack.db'}"
        wire = WireClock()
        # Slack's rate limits hold, on a Slack minute of a second: the 50 DMs to one
        # approver and the 50 outcomes to one requester would take a minute each at real
        # speed (about one message a second per channel), which is not what is measured.
        async with standin(client_traces=[wire.config], minute=MINUTE) as slack:
            env = bot_process_env(slack, url, log_level="WARNING")
            env["SLACK_MINUTE_SECONDS"] = str(MINUTE)
            bot = BotProcess(env, Path(tmp) / "bot.log")
            await bot.ready()
            await slack.slash_command(RITA, f"{at(ALICE)} warm-up")  # first-request setup
            commands, commands_on_wire = await burst(
                slack,
                wire,
                [
                    lambda i=i: slack.slash_command(RITA, f"{at(ALICE)} Request {i}")  # type: ignore[misc]
                    for i in range(n)
                ],
            )
            await poll(lambda: len(slack.visible(ALICE)) >= n + 1, 120, "approvers were not asked")
            targets = [m for m in slack.visible(ALICE) if "warm-up" not in m.text][:n]
            clicks, clicks_on_wire = await burst(
                slack,
                wire,
                [lambda m=m: slack.click(ALICE, m, messages.APPROVE_ACTION) for m in targets],  # type: ignore[misc]
            )
            await poll(
                lambda: sum("approved" in m.text for m in slack.visible(RITA)) >= n,
                120,
                "not every request was approved",
            )
            report(n, url, commands_on_wire, clicks_on_wire, commands, clicks)
            await bot.stop()


def report(
    n: int,
    url: str,
    commands_on_wire: list[float],
    clicks_on_wire: list[float],
    commands: list[float],
    clicks: list[float],
) -> None:
    print(f"Acknowledgement latency, {n} concurrent requests each, bot on {url.split(':')[0]}")
    print("on the wire (as Slack counts):")
    print(summary("  slash commands", commands_on_wire))
    print(summary("  button clicks", clicks_on_wire))
    print("from the burst's release (this process sending the other requests too):")
    print(summary("  slash commands", commands))
    print(summary("  button clicks", clicks), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
