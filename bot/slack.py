"""The Slack Web API client: retries 429s (honouring Retry-After), server errors and
connection errors before giving up. An error that persists propagates, so the engine
retries the step or setup later through the resumer: nothing is lost."""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

DEFAULT_API_URL = "https://slack.com/api/"


def make_client(token: str, api_url: str = "", *, retries: int = 3) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=api_url or DEFAULT_API_URL,
        timeout=10,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
            AsyncServerErrorRetryHandler(max_retry_count=retries),
            AsyncConnectionErrorRetryHandler(max_retry_count=retries),
        ],
    )
