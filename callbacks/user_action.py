"""`WaitForUserAction`: a person decides (approve or deny with a reason).

The handler holds who may act and applies a decision through `on_decision`, a closure over
the workflow. It refuses, with a message meant for that person, a click by someone who is
not an approver, by the requester on their own request, or a Deny without a reason. Its
manager (posting and deleting the interactive messages) lives in `callbacks.slack`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from workflows import CallbackRejected, CallbackRequest

APPROVE = "approve"
DENY = "deny"
OWN_REQUEST = "You cannot approve or deny your own request."
NOT_APPROVER = "You are not an approver of this request."


@dataclass
class WaitForUserAction:
    approvers: list[str]
    requester: str
    text: str
    on_decision: Callable[[str, str, str], None] = field(repr=False)
    quorum: int = 1
    deadline: datetime | None = None
    allow_self: bool = False
    panel: int = 0
    """How many approvers the request has in all (0: just `approvers`), for messages that
    say "2 of 3": a workflow may ask each approver in a wait of their own."""
    record: Callable[[str, bool], dict[str, Any] | None] | None = field(default=None, repr=False)
    """`record(user, answered)`: the message (`text`, `blocks`) an approver keeps once
    their DM is deleted, or None for none (a cancelled request says so itself)."""
    closed: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    """Run (as background work) once the wait is torn down and the record left: what
    else shows the request (its card) may show how it ended."""
    type: ClassVar[str] = "slack_user_action"

    @property
    def recipients(self) -> list[str]:
        """Who gets the interactive DM."""
        return self.approvers

    def check(self, user: str) -> None:
        """Raise `CallbackRejected` unless `user` may decide on this request."""
        if user == self.requester and not self.allow_self:
            raise CallbackRejected(OWN_REQUEST)
        if user not in self.approvers:
            raise CallbackRejected(NOT_APPROVER)

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        if not isinstance(input, dict):
            raise CallbackRejected("malformed action")
        user = str(input.get("user", ""))
        decision = input.get("decision")
        reason = str(input.get("reason") or "").strip()
        self.check(user)
        if decision not in (APPROVE, DENY):
            raise CallbackRejected(f"unknown decision {decision!r}")
        if decision == DENY and not reason:
            raise CallbackRejected("A reason is required to deny a request.")
        self.on_decision(user, decision, reason)
        return {"decision": decision, "user": user}
