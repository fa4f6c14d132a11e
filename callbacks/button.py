"""`WaitForButton`: one person presses one button ("I'm done", "Deployed").

The button comes in a DM from the bot, posted when the wait begins and deleted when it
ends (the same manager as `WaitForUserAction`'s: callbacks.slack), so it can be pressed
only while the workflow waits for it. A press by anyone else is refused with a message for
that person, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workflows import CallbackRejected, CallbackRequest


@dataclass
class WaitForButton:
    """Handler: `On("done", WaitForButton(user, "Access granted", "I'm done"), ...)`."""

    user: str
    text: str
    label: str
    on_press: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with who pressed, in the workflow's step (a closure over its data)."""
    type: ClassVar[str] = "slack_button"

    @property
    def recipients(self) -> list[str]:
        return [self.user]

    def check(self, user: str) -> None:
        if user != self.user:
            raise CallbackRejected(f"Only <@{self.user}> can press this button.")

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        user = str(input.get("user", "")) if isinstance(input, dict) else ""
        self.check(user)
        if self.on_press is not None:
            self.on_press(user)
        return {"user": user}
