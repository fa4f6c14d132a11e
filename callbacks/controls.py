"""`RequesterControl`: a button of the request card that only the requester may use
(Extend, Nudge): a wait the workflow keeps open while the request is, answered by a press.

Nothing is posted for it: the card already shows the buttons (the card is the approval
routine's: bot.routines), so its manager only keeps the wait. A press by anyone else, or
one the workflow refuses (a nudge too soon), is refused with a message for that person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workflows import CallbackRejected, CallbackRequest


@dataclass
class RequesterControl:
    """Handler: `On("extend", RequesterControl(requester, on_use=self.extend), ...)`;
    `on_use(user, input)` applies the press (or raises `CallbackRejected`)."""

    requester: str
    on_use: Callable[[str, dict[str, Any]], None] = field(repr=False)
    type: ClassVar[str] = "requester_control"

    def check(self, user: str) -> None:
        if user != self.requester:
            raise CallbackRejected("Only the requester can use this button.")

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        if not isinstance(input, dict):
            raise CallbackRejected("malformed action")
        user = str(input.get("user", ""))
        self.check(user)
        self.on_use(user, input)
        return {"user": user}


class ControlsManager:
    """Keeps a `RequesterControl` wait: nothing to post or delete."""

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        return ""

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        return None
