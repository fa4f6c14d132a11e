"""`Timeout(after=...)`: a wait event that fires by itself, durably.

The deadline is absolute (when the wait began + `after`) and stored as a timer row, so a
restart neither loses nor extends it; a timer that came due while no process was running
fires as soon as one starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from workflows import CallbackRequest, Engine


@dataclass(frozen=True)
class Timeout:
    """Handler: `On("timeout", Timeout(after=timedelta(hours=24)), ...)`, or at a moment
    the workflow keeps in its data, `Timeout(at=self.deadline)` (a deadline that moves,
    such as an extended one: each new wait for it sets its timer at the new moment)."""

    after: timedelta = timedelta(0)
    at: datetime | None = None
    type: ClassVar[str] = "timeout"

    async def handle(self, request: CallbackRequest, input: Any) -> None:
        return None


class TimeoutManager:
    """Stores the timer on setup and deletes it on teardown (both idempotent)."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    def attach(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("TimeoutManager is not attached to an engine")
        return self._engine

    async def setup(self, request: CallbackRequest, handler: Timeout) -> str:
        since = request.waiting_since or self.engine.clock.now()
        due = handler.at if handler.at is not None else since + handler.after
        timer = await self.engine.add_timer(request, due)
        return timer.fire_at.isoformat()

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        await self.engine.delete_timer(request)
