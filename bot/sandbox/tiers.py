"""Slack's rate limits, as the built-in Slack enforces them.

Each budget (a method in the workspace, or `chat.postMessage` in one channel; see
`bot.slackapi`) is a token bucket refilled at Slack's rate, holding the burst Slack
tolerates. A call that finds it empty is refused as Slack refuses it: HTTP 429,
`Retry-After` in whole seconds, `{"ok": false, "error": "ratelimited"}`. `minute` is how
long a Slack minute lasts: 60 seconds in the sandbox, a few seconds in tests and
benchmarks, so hours of traffic fit in minutes.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.ratelimit import Rate
from bot.slackapi import slack_rate


@dataclass
class _Budget:
    per_second: float
    burst: float
    tokens: float
    updated: float


class Tiers:
    def __init__(
        self,
        *,
        minute: float = 60.0,
        rates: Mapping[str, Rate] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rates` replaces Slack's rate for some methods, e.g. `conversations.history` at
        one call a minute, as for commercially distributed apps outside the Marketplace."""
        self.minute = minute
        self.rates = dict(rates or {})
        self.clock = clock
        self._budgets: dict[str, _Budget] = {}
        self.refused: Counter[str] = Counter()  # 429s by method

    def _rate(self, key: str) -> Rate | None:
        return self.rates.get(key.split(":", 1)[0]) or slack_rate(key)

    def take(self, key: str) -> int | None:
        """Spend one call of `key`'s budget; or, when it is empty, the `Retry-After`."""
        budget = self._budgets.get(key)
        now = self.clock()
        if budget is None:
            rate = self._rate(key)
            if rate is None:
                return None
            budget = _Budget(rate.per_minute / self.minute, rate.burst, rate.burst, now)
            self._budgets[key] = budget
        budget.tokens = min(
            budget.burst, budget.tokens + (now - budget.updated) * budget.per_second
        )
        budget.updated = now
        if budget.tokens >= 1.0:
            budget.tokens -= 1.0
            return None
        self.refused[key.split(":", 1)[0]] += 1
        return max(1, math.ceil((1.0 - budget.tokens) / budget.per_second))
