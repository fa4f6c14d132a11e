"""Spending Slack's rate limits on purpose: every Web API call waits for its method's budget.

Slack limits each method per workspace by tier (and `chat.postMessage` per channel), and a
caller over the limit gets a 429 with `Retry-After`. Colliding into those is what a bot
without a plan does: every caller meets the limit on its own, retries on its own, and an
urgent message waits behind a backlog of background ones. Here each budget is a token
bucket shared by every caller in the process, refilled at a little under Slack's rate:

- a call waits (asynchronously) until its budget has a token, instead of being refused;
- waiting calls are served by priority, then in arrival order: `URGENT` (what a person is
  waiting for: an approver's request, the outcome, a confirmation) before `BACKGROUND`
  (teardowns, refreshes, reminders), which the caller marks with
  `callbacks.priority.background()`;
- work whose due time can be stored instead (a teardown: the engine keeps it in the
  database, `workflows.RetryLater`) does not wait in the process at all: it is given a
  later turn (`now_or_later`), so no execution slot is held by a deletion in a backlog;
- a 429 (Slack's budget is shared with other processes, or our guess of it was off) pauses
  that budget for every caller for `Retry-After` seconds.

Several processes of one workspace each keep their own buckets; `share` (the setting
`SLACK_RATE_SHARE`) gives each a fraction of Slack's rates, and `Retry-After` catches what
is left (see the README).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callbacks.priority import current_priority


@dataclass(frozen=True)
class Rate:
    """`per_minute` calls a (Slack) minute, with up to `burst` at once after a quiet spell."""

    per_minute: float
    burst: float = 1.0


@dataclass
class _Bucket:
    rate: float  # tokens a second
    burst: float
    tokens: float
    updated: float
    paused_until: float = 0.0
    next_turn: float = 0.0  # the latest turn handed out to work that waits elsewhere
    turns: dict[str, float] = field(default_factory=dict)  # call -> its turn, not yet served
    waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    dispatcher: asyncio.Task[None] | None = None


class Limiter:
    """Token buckets by key (a method, or a method and channel), served by priority.

    `rate_of(key)` gives a key's `Rate` (None: unlimited). `minute` is how many seconds a
    Slack minute lasts (60; tests and benchmarks compress it), `share` the fraction of each
    rate this process may use."""

    def __init__(
        self,
        rate_of: Callable[[str], Rate | None],
        *,
        minute: float = 60.0,
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_of = rate_of
        self.minute = minute
        self.share = share
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._seq = itertools.count()
        self.waited: dict[str, int] = {}  # calls that had to wait, by key
        self.paused: dict[str, int] = {}  # 429s that paused a key
        self.deferred: dict[str, int] = {}  # calls told to come back later, by key

    def _bucket(self, key: str) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = self.rate_of(key)
            if rate is None:
                return None
            per_second = rate.per_minute * self.share / self.minute
            burst = max(rate.burst * self.share, 1.0)
            bucket = _Bucket(per_second, burst, burst, self.clock())
            self._buckets[key] = bucket
        return bucket

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.updated) * bucket.rate)
        bucket.updated = now

    async def acquire(self, key: str, priority: int | None = None) -> None:
        """Wait until `key` may be called once (at once when its budget allows)."""
        bucket = self._bucket(key)
        if bucket is None:
            return
        now = self.clock()
        self._refill(bucket, now)
        if not bucket.waiters and bucket.paused_until <= now and bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        self.waited[key] = self.waited.get(key, 0) + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rank = current_priority() if priority is None else priority
        heapq.heappush(bucket.waiters, (rank, next(self._seq), future))
        self._dispatch(bucket)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                bucket.tokens += 1.0  # it was granted a token it will not use
            raise

    def now_or_later(self, key: str, call: str = "") -> float | None:
        """For work that need not wait in place (a teardown, whose due time the engine can
        store): spend a token now and return None, or hand out a later turn and return in
        how many seconds it comes. `call` names the call (its arguments), so that when it
        comes back it is served in its turn, ahead of calls that came after it, instead
        of queueing again at the end. Urgent calls never wait behind such turns: they take
        tokens as they come, and a turn that finds none is put off only until the next."""
        bucket = self._bucket(key)
        if bucket is None:
            return None
        now = self.clock()
        self._refill(bucket, now)
        step = 1.0 / bucket.rate
        turn = bucket.turns.get(call) if call else None
        if turn is None:
            if (
                not bucket.waiters
                and not bucket.turns
                and bucket.paused_until <= now
                and bucket.tokens >= 1.0
            ):
                bucket.tokens -= 1.0
                return None
            self.deferred[key] = self.deferred.get(key, 0) + 1
            turn = max(
                now + (max(0.0, 1.0 - bucket.tokens) + len(bucket.waiters)) * step,
                bucket.paused_until,
                bucket.next_turn + step,
            )
            bucket.next_turn = turn
            if call:
                _forget_stale(bucket.turns, now)
                bucket.turns[call] = turn
            return turn - now
        if now + step / 2 < turn:  # back early
            return turn - now
        if bucket.paused_until > now:
            return bucket.paused_until - now
        if bucket.tokens >= 1.0 and not bucket.waiters:
            bucket.tokens -= 1.0
            del bucket.turns[call]
            return None
        return max(step / 2, (1.0 - bucket.tokens) * step)  # keeps its place

    def pause(self, key: str, seconds: float) -> None:
        """Slack said 429 with `Retry-After: seconds`: nobody calls `key` before then."""
        bucket = self._bucket(key)
        if bucket is None:
            return
        self.paused[key] = self.paused.get(key, 0) + 1
        bucket.paused_until = max(bucket.paused_until, self.clock() + seconds)
        bucket.tokens = min(bucket.tokens, 0.0)
        if bucket.waiters:
            self._dispatch(bucket)

    def _dispatch(self, bucket: _Bucket) -> None:
        if bucket.dispatcher is None or bucket.dispatcher.done():
            bucket.dispatcher = asyncio.get_running_loop().create_task(self._serve(bucket))

    async def _serve(self, bucket: _Bucket) -> None:
        """Hand out tokens to the waiters, best first, as they come due."""
        while bucket.waiters:
            now = self.clock()
            self._refill(bucket, now)
            if bucket.paused_until > now:
                await asyncio.sleep(bucket.paused_until - now)
                continue
            if bucket.tokens < 1.0:
                await asyncio.sleep((1.0 - bucket.tokens) / bucket.rate)
                continue
            _, _, future = heapq.heappop(bucket.waiters)
            if future.done():  # its caller gave up
                continue
            bucket.tokens -= 1.0
            future.set_result(None)
            await asyncio.sleep(0)  # let it run before the next is chosen


TURN_KEPT = 600.0  # seconds a turn is kept for a call that has not come back for it


def _forget_stale(turns: dict[str, float], now: float) -> None:
    """Drop turns long past whose calls never came back (their workflow was repaired, or
    another process did the work), so the table stays small."""
    if len(turns) < 1000:
        return
    for call, turn in list(turns.items()):
        if turn < now - TURN_KEPT:
            del turns[call]
