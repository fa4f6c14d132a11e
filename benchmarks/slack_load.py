"""The bot at Slack's rate limits: approval requests offered at 0.5x, 1x and 2x the rate
Slack's tiers allow, against the built-in Slack enforcing them on a compressed clock.

    uv run python -m benchmarks.slack_load [--minute 6] [--minutes 10] [--processes 1]

The bot runs as in production, `python -m bot` (on SQLite, or `--database-url`), with
`SLACK_MINUTE_SECONDS` set to the built-in Slack's compressed minute. Each request names
two approvers (drawn from ten pairs) and one of ten requesters; once an approver's DM
arrives, that approver approves. A two-approver approval's calls are then the mission's:
two approver DMs and the outcome (`chat.postMessage`, about one a second per channel), two
deletions at teardown (`chat.delete`, Tier 3: 50 a minute); and its card in #general
(posted, linked once, updated once, a line in its thread) and a record for each approver
(`chat.postMessage`, `chat.getPermalink`, `chat.update`: Tier 3). The deletions set the
ceiling: 25 approvals a minute (the card's two posts in one channel allow 30). Each load
runs `--minutes` Slack minutes, then the backlog drains.

Printed per load: calls per approval by method with its tier, approvals told and torn down
per Slack minute against the ceiling, p50/p99 from command to the approver's DM and from
click to the outcome DM (in real milliseconds and in Slack seconds), 429s, and, after the
load stops, how long the backlog took to drain and whether anything was lost or
duplicated. A last load at 1x adds 50 concurrent slash commands half-way through and times
their acknowledgements on the wire while the bot runs at its ceiling.
Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.slack_ack import WireClock
from bot import messages
from bot.sandbox.slack import Message, SlackStandin
from bot.slackapi import METHODS
from tests.processes import BotProcess, free_port, poll
from tests.slackbot import bot_process_env, standin

CEILING_PER_MINUTE = 25.0  # chat.delete's 50 a minute, two per approval
PAIRS = [(f"U0APPR{2 * i:02d}", f"U0APPR{2 * i + 1:02d}") for i in range(10)]
REQUESTERS = [f"U0REQS{i:02d}" for i in range(10)]


@dataclass
class Request:
    text: str
    requester: str
    approvers: tuple[str, str]
    sent: float = 0.0
    acked: float = 0.0
    asked: float = 0.0  # the first approver DM
    clicked: float = 0.0
    told: float = 0.0


@dataclass(eq=False)
class Watcher:
    """Notes when each message first appears, from the built-in Slack's change feed, and
    files it under its conversation, so that a waiting request looks through its own DM
    only (scanning the whole workspace for every waiter on every change costs this process,
    which also answers as Slack, seconds of CPU at the higher loads)."""

    slack: SlackStandin
    seen: int = 0
    first_seen: dict[str, float] = field(default_factory=dict)  # ts -> monotonic
    by_channel: dict[str, list[Message]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self) -> None:
        now = time.monotonic()
        messages_ = self.slack.workspace.messages
        for message in messages_[self.seen :]:
            self.first_seen.setdefault(message.ts, now)
            if not message.ephemeral_to:
                self.by_channel[message.channel].append(message)
        self.seen = len(messages_)
        self.changed.set()

    def find(self, user: str, text: str, kind: str) -> Message | None:
        for message in self.by_channel.get(self.slack.dm_channel(user), ()):
            if not message.deleted and text in message.text and kind in message.text:
                return message
        return None


async def wait_for(watcher: Watcher, user: str, text: str, kind: str, timeout: float) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        found = watcher.find(user, text, kind)
        if found is not None:
            return found
        watcher.changed.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind!r} for {text!r} to {user}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.changed.wait(), min(remaining, 0.5))


async def run_request(
    slack: SlackStandin, watcher: Watcher, request: Request, app_url: str, timeout: float
) -> None:
    mentions = " ".join(f"<@{a}|{a.lower()}>" for a in request.approvers)
    request.sent = time.monotonic()
    answer = await slack.slash_command(
        request.requester, f"{mentions} {request.text}", app_url=app_url
    )
    request.acked = time.monotonic()
    if answer.status != 200 or "sent" not in str(answer.json):
        raise RuntimeError(f"{request.text}: {answer.status} {answer.body}")
    first = request.approvers[0]
    dm = await wait_for(watcher, first, request.text, "Approval requested", timeout)
    request.asked = watcher.first_seen.get(dm.ts, time.monotonic())
    request.clicked = time.monotonic()
    await slack.click(first, dm, messages.APPROVE_ACTION, app_url=app_url)
    told = await wait_for(watcher, request.requester, request.text, "*approved*", timeout)
    request.told = watcher.first_seen.get(told.ts, time.monotonic())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(
    slack: SlackStandin,
    watcher: Watcher,
    urls: list[str],
    label: str,
    factor: float,
    args: argparse.Namespace,
    wire: WireClock,
    *,
    minutes: float,
    burst_at_half: bool = False,
) -> dict[str, Any]:
    """Offer `factor` times the ceiling for `minutes` Slack minutes; with `burst_at_half`,
    50 concurrent commands half-way through, whose acknowledgements are timed."""
    minute = args.minute
    per_minute = CEILING_PER_MINUTE * factor
    total = round(per_minute * minutes)
    interval = minute / per_minute
    calls_before = len(slack.calls)
    refused_before = sum(slack.tiers.refused.values())
    requests = [
        Request(f"{label}-{i:04d}", REQUESTERS[i % 10], PAIRS[i % 10]) for i in range(total)
    ]
    tasks: list[asyncio.Task[None]] = []
    ack_burst: list[float] = []
    timeout = minutes * minute * 4 + 120
    started = time.monotonic()
    for i, request in enumerate(list(requests)):
        at = started + i * interval
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        url = urls[i % len(urls)]
        tasks.append(asyncio.create_task(run_request(slack, watcher, request, url, timeout)))
        if burst_at_half and i == total // 2:
            burst = [
                Request(f"{label}-burst-{j:02d}", REQUESTERS[j % 10], PAIRS[j % 10])
                for j in range(50)
            ]
            # Built and signed first, then released at once (as `benchmarks.slack_ack`).
            with slack.holding():
                tasks += [
                    asyncio.create_task(
                        run_request(slack, watcher, r, urls[j % len(urls)], timeout)
                    )
                    for j, r in enumerate(burst)
                ]
            await poll(lambda b=burst: slack.held >= len(b), 30, "the burst was not built")
            wire.samples.clear()
            slack.release_requests()
            await poll(lambda b=burst: all(r.acked for r in b), 30, "the burst was not acked")
            ack_burst = list(wire.samples)
            requests += burst
    offered_until = time.monotonic()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    told_all = time.monotonic()
    # The backlog: every approver message deleted.
    drained = await drain(slack, [r.text for r in requests], args)
    calls = slack.calls[calls_before:]
    by_method = collections.Counter(name for name, _ in calls if name != "auth.test")
    done = [r for r in requests if r.told]
    offered_minutes = (offered_until - started) / minute
    told_rate = sum(1 for r in done if r.told <= offered_until) / offered_minutes
    deleted = [
        when
        for when, how in slack.timeline("chat.delete")
        if how == "ok" and started <= when <= offered_until
    ]
    deleted_rate = len(deleted) / 2 / offered_minutes
    posts = [m for m in slack.workspace.messages if m.text.find(f"{label}-") >= 0]
    duplicates = sum(1 for n in collections.Counter(_identity(m) for m in posts).values() if n > 1)
    return {
        "label": label,
        "factor": factor,
        "offered": len(requests),
        "told": len(done),
        "failures": [repr(f) for f in failures[:3]],
        "failed": len(failures),
        "told_rate": told_rate,
        "deleted_rate": deleted_rate,
        "calls": by_method,
        "approvals": len(requests),
        "refused": sum(slack.tiers.refused.values()) - refused_before,
        "all_calls": len(calls),
        "asked": [(r.asked - r.sent) for r in done],
        "outcome": [(r.told - r.clicked) for r in done],
        "acks": [(r.acked - r.sent) for r in requests if r.acked],
        "burst": ack_burst,
        "drain": drained - told_all if drained else None,
        "duplicates": duplicates,
    }


def _identity(message: Message) -> tuple[str, str]:
    """One message per conversation, kind of message and request."""
    return message.channel, message.text


async def drain(slack: SlackStandin, texts: list[str], args: argparse.Namespace) -> float | None:
    def undeleted() -> int:
        return sum(
            1
            for m in slack.workspace.messages
            if not m.deleted and "Approval requested" in m.text and any(t in m.text for t in texts)
        )

    try:
        await poll(lambda: undeleted() == 0, args.minutes * args.minute * 4 + 120, "drain")
    except AssertionError:
        return None
    return time.monotonic()


def report(result: dict[str, Any], minute: float) -> None:
    n = max(result["told"], 1)
    print(
        f"\n{result['label']}: offered {result['factor']:.1f}x the ceiling "
        f"({CEILING_PER_MINUTE * result['factor']:.1f} approvals a Slack minute), "
        f"{result['offered']} requests"
    )
    print(f"  {'method':24} {'tier':>7}  calls/approval")
    for method, count in sorted(result["calls"].items()):
        tier = METHODS[method].tier if method in METHODS else "?"
        print(f"  {method:24} {tier!s:>7}  {count / n:8.2f}")
    for what, key in (("told", "told_rate"), ("torn down (both DMs deleted)", "deleted_rate")):
        print(
            f"  approvals {what} per Slack minute while offered: {result[key]:.1f} "
            f"({result[key] / CEILING_PER_MINUTE:.0%} of the {CEILING_PER_MINUTE:.0f} ceiling)"
        )
    for name, key in (("command -> approver DM", "asked"), ("click -> outcome DM", "outcome")):
        values = result[key]
        if values:
            print(
                f"  {name:24} p50 {statistics.median(values) * 1000:7.0f} ms "
                f"({statistics.median(values) / minute * 60:5.2f} Slack s)  "
                f"p99 {percentile(values, 0.99) * 1000:7.0f} ms "
                f"({percentile(values, 0.99) / minute * 60:5.2f} Slack s)"
            )
    if result["acks"]:
        p99 = percentile(result["acks"], 0.99) * 1000
        print(f"  command acknowledgements, with sending: p99 {p99:.1f} ms")
    if result["burst"]:
        print(
            f"  50 concurrent commands at the ceiling, on the wire: "
            f"p99 {percentile(result['burst'], 0.99):.1f} ms, max {max(result['burst']):.1f} ms"
        )
    share = result["refused"] / max(result["all_calls"], 1)
    print(f"  429s: {result['refused']} of {result['all_calls']} calls ({share:.2%})")
    drain = result["drain"]
    print(
        f"  told {result['told']}/{result['offered']}, failed {result['failed']} "
        f"{result['failures'] or ''}, duplicate messages {result['duplicates']}; backlog "
        + (
            f"drained {drain:.1f} s ({drain / minute:.1f} Slack minutes) after the last told"
            if drain is not None
            else "NOT drained"
        )
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minute", type=float, default=6.0, help="seconds a Slack minute lasts")
    parser.add_argument("--minutes", type=float, default=10.0, help="Slack minutes per load")
    parser.add_argument("--processes", type=int, default=1, help="bot processes sharing Slack")
    parser.add_argument("--loads", default="0.5,1,2", help="offered rates, times the ceiling")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--logs", default="", help="keep the bot's logs in this folder")
    args = parser.parse_args()
    users = {u: u.lower() for pair in PAIRS for u in pair} | {u: u.lower() for u in REQUESTERS}
    wire = WireClock()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'load.db'}"
        async with standin(minute=args.minute, client_traces=[wire.config]) as slack:
            for uid, name in users.items():
                slack.add_user(uid, name)
            watcher = Watcher(slack)
            slack.subscribe(watcher)
            processes, urls = [], []
            for i in range(args.processes):
                env = bot_process_env(slack, url, log_level="WARNING")
                port = free_port() if i else int(env["PORT"])
                env.update(
                    PORT=str(port),
                    SLACK_MINUTE_SECONDS=str(args.minute),
                    SLACK_RATE_SHARE=str(1 / args.processes),
                )
                env["LOG_LEVEL"] = "INFO" if args.logs else "WARNING"
                process = BotProcess(env, Path(args.logs or tmp) / f"bot{i}.log")
                await process.ready()
                processes.append(process)
                urls.append(f"http://127.0.0.1:{port}/slack/events")
            print(
                f"Slack minute = {args.minute:g} s; {args.minutes:g} Slack minutes a load; "
                f"{args.processes} bot process(es) on {url.split(':')[0]}, each with "
                f"SLACK_RATE_SHARE={1 / args.processes:.2f}"
            )
            for factor in (float(f) for f in args.loads.split(",")):
                result = await load(
                    slack, watcher, urls, f"x{factor:g}", factor, args, wire, minutes=args.minutes
                )
                report(result, args.minute)
            # Acknowledgements while the bot runs at its ceiling: 50 concurrent commands
            # on top of the 1x load (a load of its own, so the figures above stay clean).
            result = await load(
                slack,
                watcher,
                urls,
                "acks",
                1.0,
                args,
                wire,
                minutes=max(2.0, args.minutes / 2),
                burst_at_half=True,
            )
            report(result, args.minute)
            for process in processes:
                await process.stop()


if __name__ == "__main__":
    asyncio.run(main())
