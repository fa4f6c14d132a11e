"""The Slack Web API client: every call waits for its rate budget (bot.ratelimit), or,
for background work, raises `workflows.RetryLater` with its turn so the engine stores it
instead of a task waiting; 429s pause that budget for every caller and are retried after
`Retry-After`; server and connection errors are retried too. An error that persists
propagates, so the engine retries the step or setup later through the resumer: nothing is
lost."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.ratelimit import Limiter, Rate
from bot.slackapi import budget_key, slack_rate
from callbacks.priority import BACKGROUND, current_priority
from workflows import RetryLater

DEFAULT_API_URL = "https://slack.com/api/"
MARGIN = 0.95  # of Slack's rates: our clock and Slack's never agree exactly

_budget: ContextVar[str] = ContextVar("slack_budget", default="")


def our_rate(key: str) -> Rate | None:
    """A little under Slack's rate, and a burst one smaller, for every budget."""
    rate = slack_rate(key)
    if rate is None:
        return None
    return Rate(rate.per_minute * MARGIN, burst=max(1.0, rate.burst - 1))


class LimitedClient(AsyncWebClient):
    """slack_sdk's client, each call spending its method's (and channel's) budget first."""

    def __init__(self, *args: Any, limiter: Limiter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limiter = limiter

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        arguments: dict[str, Any] = {}
        for part in ("params", "data", "json"):
            given = kwargs.get(part)
            if isinstance(given, dict):
                arguments.update(given)
        key = budget_key(api_method, str(arguments.get("channel", "")))
        if current_priority() != BACKGROUND:
            await self.limiter.acquire(key)
        else:
            call = json.dumps(arguments, sort_keys=True, default=str)
            wait = self.limiter.now_or_later(key, f"{api_method} {call}")
            if wait is not None:
                raise RetryLater(timedelta(seconds=wait), f"{key}: its turn in {wait:.2f}s")
        token = _budget.set(key)
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as e:
            if e.response.status_code != 429 or current_priority() != BACKGROUND:
                raise
            seconds = _retry_after(e.response.headers)  # background work is not retried here
            self.limiter.pause(key, seconds)
            raise RetryLater(timedelta(seconds=seconds), f"{key}: Slack said 429") from e
        finally:
            _budget.reset(token)


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            with contextlib.suppress(TypeError, ValueError):
                return float(value)
    return 1.0


class RateLimitedRetry(AsyncRetryHandler):
    """On a 429: pause the budget for every caller until `Retry-After`, then wait for it."""

    def __init__(self, limiter: Limiter, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.limiter = limiter

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        # Background work is told to come back later instead (LimitedClient.api_call).
        return (
            response is not None
            and response.status_code == 429
            and current_priority() != BACKGROUND
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        seconds = 1.0 if response is None else _retry_after(response.headers)
        key = _budget.get() or request.url.rsplit("/", 1)[-1]
        self.limiter.pause(key, seconds)
        await self.limiter.acquire(key)
        state.next_attempt_requested = True
        state.increment_current_attempt()


def make_client(
    token: str,
    api_url: str = "",
    *,
    retries: int = 3,
    limiter: Limiter | None = None,
) -> LimitedClient:
    limiter = limiter or Limiter(our_rate)
    return LimitedClient(
        token=token,
        base_url=api_url or DEFAULT_API_URL,
        timeout=10,
        limiter=limiter,
        retry_handlers=[
            RateLimitedRetry(limiter, max_retry_count=retries),
            AsyncServerErrorRetryHandler(max_retry_count=retries),
            AsyncConnectionErrorRetryHandler(max_retry_count=retries),
        ],
    )
