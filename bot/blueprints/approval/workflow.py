"""The approval workflow the bot ships: the approval routine (bot.routines.approval), then
the requester is told the outcome.

`ApprovalRequest` is itself an `Approval` (the routine's outcome fields, flat on the
workflow as its rows have always been stored), so it hands the routine itself as the
state, and it uses the routine's original names (an empty routine name), so requests that
were waiting when the bot was upgraded carry on. Its model validator applies the routine's
rules, so the command, `new_workflow` and an operator's `workflows set` refuse the same
things with the same words. Ending the workflow tears down every wait still open: the
remaining approver messages are deleted and the timer is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from pydantic import model_validator

from bot.routines.approval import Approval, approval, approval_cancelled, check_rules
from workflows import Return, S, Step, Summary, Workflow

FAILED = "failed"
CANCELLED = "cancelled"


@runtime_checkable
class Notifier(Protocol):
    """Tells the requester how their request ended (the bot sends a Slack DM)."""

    async def tell_requester(
        self, request: ApprovalRequest, outcome: str, detail: str = "", by: str = ""
    ) -> None:
        """`detail`: the error of a failed request, the reason of a cancelled one; `by`:
        who cancelled it."""
        ...


class ApprovalRequest(Workflow, Approval):
    workflow_type = "approval"

    requester: str
    approvers: list[str]
    text: str
    quorum: int = 1
    timeout: timedelta = timedelta(hours=24)
    allow_self: bool = False
    channel: str = ""

    @model_validator(mode="after")
    def _rules(self) -> ApprovalRequest:
        """The approval routine's rules, checked on the data too (`workflows set`)."""
        check_rules(
            approvers=self.approvers,
            requester=self.requester,
            text=self.text,
            quorum=self.quorum,
            timeout=self.timeout,
            allow_self=self.allow_self,
        )
        return self

    @property
    def deadline(self) -> datetime | None:
        return None if self.requested_at is None else self.requested_at + self.timeout

    def summary(self) -> Summary:
        return Summary(
            title=self.text,
            started_by=self.requester,
            people=self.people(self.approvers),
            outcome=self.outcome or "",
        )

    def asked(self) -> dict[str, Any]:
        """What the approval is asked, for `approval` and `approval_cancelled` alike."""
        return {
            "approvers": self.approvers,
            "requester": self.requester,
            "text": self.text,
            "quorum": self.quorum,
            "timeout": self.timeout,
        }

    def definition(self) -> Any:
        return S(
            approval(
                self, "", self, **self.asked(), allow_self=self.allow_self, channel=self.channel
            ),
            Step("tell requester", self.tell_requester),
            Return(self.result()),
        )

    async def tell_requester(self) -> None:
        outcome = self.outcome
        assert outcome is not None
        await self.service(Notifier).tell_requester(self, outcome)  # type: ignore[type-abstract]

    async def on_failure(self, error: str) -> None:
        await self.service(Notifier).tell_requester(self, FAILED, error)  # type: ignore[type-abstract]

    async def on_cancel(self, reason: str, actor: str) -> None:
        await approval_cancelled(self, "", self, **self.asked(), reason=reason, actor=actor)
        await self.service(Notifier).tell_requester(self, CANCELLED, reason, by=actor)  # type: ignore[type-abstract]

    def result(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "approved_by": self.approved_by,
            "denied_by": self.denied_by,
            "reason": self.reason,
        }
