"""The sandbox's webhook receiver: where webhook steps deliver when nothing else is
configured, so what the engine sends, how often, and whether it arrives once, can be seen.

`POST /sandbox/webhooks/{name}` records every request (its body, `Idempotency-Key`,
`X-Timestamp`, whether `X-Signature` verifies with the sandbox's secret, which attempt it
is for its key) and answers as a careful receiver does: 401 for a bad signature, 400 for a
body that is not JSON, 200 otherwise, also for a key already delivered, which is then
marked a duplicate and accepted without effect. That makes exactly-once visible: however
often the engine retries, one delivery per key is not a duplicate.

`POST /sandbox/api/webhooks/fail` with `{"count": N}` makes the next N requests answer
500, as a receiver that is down would, so the engine's retries can be watched.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.routines.webhook import IDEMPOTENCY_KEY, TIMESTAMP, verify

KEPT = 100
"""How many requests the receiver remembers (the newest)."""


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got, and what it answered."""

    id: int
    """1 for the first request since the sandbox started, then 2, ..."""
    name: str
    received_at: str
    """ISO 8601, UTC."""
    body: Any
    """The JSON body; the raw text when it is not JSON."""
    idempotency_key: str
    timestamp: str
    signed: bool
    """Whether `X-Signature` verifies with the sandbox's webhook secret."""
    attempt: int
    """Which request this is for its idempotency key: 1, 2, ... (1 without a key)."""
    duplicate: bool
    """Its key had already been delivered (answered 200) before."""
    status: int
    answer: dict[str, Any]


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.failing = 0
        """How many of the next requests are answered 500."""
        self._deliveries: deque[Delivery] = deque(maxlen=KEPT)
        self._received = 0
        self._attempts: Counter[str] = Counter()
        self._delivered: set[str] = set()
        self._listeners: set[Callable[[], None]] = set()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/sandbox/webhooks/{name}", self.receive),
            web.post("/sandbox/api/webhooks/fail", self.fail),
        ]

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever a request was recorded or the switch changed; returns
        the unsubscriber."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    @property
    def deliveries(self) -> list[Delivery]:
        """The requests received, newest first (at most the last 100)."""
        return list(reversed(self._deliveries))

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.deliveries]

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        # From here on nothing awaits, so concurrent deliveries of one key count in order.
        key = request.headers.get(IDEMPOTENCY_KEY, "")
        signed = verify(self.secret, request.headers, raw)
        text = raw.decode("utf-8", "replace")
        try:
            body: Any = json.loads(text)
            parsed = True
        except ValueError:
            body, parsed = text, False
        if key:
            self._attempts[key] += 1
        duplicate = bool(key) and key in self._delivered
        if self.failing:
            self.failing -= 1
            status, answer = 500, {"ok": False, "error": "failing on purpose (the fail switch)"}
        elif not signed:
            status, answer = 401, {"ok": False, "error": "bad signature"}
        elif not parsed:
            status, answer = 400, {"ok": False, "error": "the body is not JSON"}
        else:
            status, answer = 200, {"ok": True}
            if key:
                self._delivered.add(key)
        self._received += 1
        self._deliveries.append(
            Delivery(
                id=self._received,
                name=request.match_info["name"],
                received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                body=body,
                idempotency_key=key,
                timestamp=request.headers.get(TIMESTAMP, ""),
                signed=signed,
                attempt=self._attempts[key] if key else 1,
                duplicate=duplicate and status == 200,
                status=status,
                answer=answer,
            )
        )
        self._notify()
        return web.json_response(answer, status=status)

    async def fail(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return web.json_response(
                {"ok": False, "error": "count must be a whole number, 0 or more"}, status=400
            )
        self.failing = count
        self._notify()
        return web.json_response({"ok": True, "failing": count})
