"""The outgoing webhook step: a signed JSON POST, retried by the engine until delivered.

    webhook(self, "tell deploys", url="https://deploys.example.com/hook",
            payload={"service": self.service_name, "version": self.version})

The request carries, as Slack signs its own requests:
- `X-Timestamp`: when it was signed (Unix seconds), and
- `X-Signature`: `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`, keyed with the
  secret (`WEBHOOK_SECRET`, or the step's own `secret=`);
- `Idempotency-Key`: the workflow id and the step's name, the same on every attempt, so
  the receiver can accept a delivery once however often it arrives.

A 2xx answer delivers it. A 5xx, 408 or 429 answer, a timeout or a connection error
raises, so the engine retries the step with its backoff; after its last attempt
(`max_attempts`) the workflow fails with the last error (naming the URL) and its
`on_failure` is told. Any other answer (a 4xx: the receiver refuses the request itself)
fails the workflow at once (`StepFailed`), naming the URL and the status. The body's bytes
are the same on every attempt (sorted keys), only the timestamp and signature change.

A receiver checks a request with `verify` (5 minutes of clock skew, like Slack):

    if not verify(secret, request.headers, await request.read()):
        return web.Response(status=401)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.blueprint import Parts, UsageError
from bot.settings import Settings
from workflows import Step, StepFailed, Workflow

SIGNATURE = "X-Signature"
TIMESTAMP = "X-Timestamp"
IDEMPOTENCY_KEY = "Idempotency-Key"
WINDOW = 5 * 60
"""How far a request's timestamp may be from the receiver's clock, in seconds."""
RETRIED = frozenset({408, 429})
"""Client errors that say "later" rather than "never"."""


class WebhookError(StepFailed):
    """The receiver refused the request (a 4xx): no retry would be accepted either."""


class WebhookUnavailable(Exception):
    """The receiver could not take the request now (5xx, 408, 429, unreachable): retried."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Signature` value of `body` sent at `timestamp`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """Whether a request was signed with `secret` within 5 minutes of `now` (Unix seconds;
    default the clock): for receivers of the webhook step."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP.lower(), "")
    signature = lowered.get(SIGNATURE.lower(), "")
    if not stamp.isdigit() or not signature:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > WINDOW:
        return False
    return hmac.compare_digest(sign(secret, int(stamp), body), signature)


class Webhooks:
    """The service webhook steps reach: one aiohttp session for the process (opened at
    the first delivery, closed with the bot) and the default secret."""

    def __init__(self, secret: str = "", *, timeout: float = 10.0) -> None:
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def of(cls, parts: Parts) -> Webhooks:
        return cls(parts.settings.webhook_secret)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(
        self,
        workflow_id: str,
        step: str,
        url: str,
        payload: Any,
        secret: str | None = None,
    ) -> int:
        """POST `payload` as signed JSON; returns the status of a delivery (2xx)."""
        key = secret if secret is not None else self.secret
        if not key:
            raise StepFailed(
                f"webhook to {url}: no secret to sign it with (set WEBHOOK_SECRET, or give "
                "the step its own secret=)"
            )
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP: str(stamp),
            SIGNATURE: sign(key, stamp, body),
            IDEMPOTENCY_KEY: f"{workflow_id}:{step}",
        }
        try:
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                answer = (await response.text())[:200]
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise WebhookUnavailable(
                f"webhook to {url}: cannot reach it ({e or type(e).__name__})"
            ) from e
        if 200 <= status < 300:
            return status
        said = f": {answer.strip()}" if answer.strip() else ""
        if status >= 500 or status in RETRIED:
            raise WebhookUnavailable(f"webhook to {url}: answered {status}{said}")
        raise WebhookError(f"webhook to {url}: refused with {status}{said}")


def webhook_url(configured: str, settings: Settings | None, name: str, setting: str) -> str:
    """Where a launch's webhook `name` goes: the URL `setting` configures, else the
    `WEBHOOK_RECEIVER` base with `name` appended (the sandbox's receiver); `UsageError`
    naming `setting` when neither is set, so the launch is refused before anyone approves
    what could never be delivered."""
    if configured:
        return configured
    base = settings.webhook_receiver if settings is not None else ""
    if base:
        return base.rstrip("/") + "/" + name
    raise UsageError(f"the bot has no URL to send the {name} webhook to: set {setting}")


def webhook(
    workflow: Workflow,
    name: str,
    *,
    url: str,
    payload: Any,
    secret: str | None = None,
) -> Step:
    """A step named `name` that POSTs `payload` (JSON) to `url`, signed with `secret`
    (default `WEBHOOK_SECRET`), with `Idempotency-Key: {workflow id}:{name}`."""

    async def deliver() -> None:
        await workflow.service(Webhooks).deliver(workflow.workflow_id, name, url, payload, secret)

    return Step(name, deliver)
