"""The approval workflow the bot ships: any N-of-M quorum, one Deny ends it, a timeout.

An ordinary workflow written with the statements, and the showcase for writing your own:
each approver gets a thread of their own that waits for their decision (so their message
stays up until they decide or the request is settled), a deadline thread waits for the
timeout, and the main thread waits until the data says the request is decided, tells the
requester, and ends. Ending the workflow tears down every wait still open: the remaining
approver messages are deleted and the timer is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from pydantic import model_validator

from callbacks.timeout import Timeout
from callbacks.user_action import APPROVE, WaitForUserAction
from workflows import Go, On, Return, S, Step, Summary, Wait, WaitFor, Workflow

APPROVED = "approved"
DENIED = "denied"
TIMED_OUT = "timed out"
FAILED = "failed"
CANCELLED = "cancelled"

MAX_TEXT = 40_000
"""The longest request anyone can be shown whole: Slack's limit for a message's text, and
what the "View full request" modal holds in its sections."""


@runtime_checkable
class Notifier(Protocol):
    """Tells the requester how their request ended (the bot sends a Slack DM)."""

    async def tell_requester(
        self, request: ApprovalRequest, outcome: str, detail: str = "", by: str = ""
    ) -> None:
        """`detail`: the error of a failed request, the reason of a cancelled one; `by`:
        who cancelled it."""
        ...


class ApprovalRequest(Workflow):
    workflow_type = "approval"

    requester: str
    approvers: list[str]
    text: str
    quorum: int = 1
    timeout: timedelta = timedelta(hours=24)
    allow_self: bool = False
    channel: str = ""
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    approved_by: list[str] = []
    denied_by: str = ""
    reason: str = ""
    timed_out: bool = False

    @model_validator(mode="after")
    def _rules(self) -> ApprovalRequest:
        """The request's own rules, so every way in (the command, `new_workflow`, an
        operator's `workflows set`) refuses the same things with the same words."""
        if not self.approvers:
            raise ValueError("name at least one approver")
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("each approver can be named only once")
        if self.quorum < 1:
            raise ValueError(f"the quorum must be at least 1 (it is {self.quorum})")
        if self.quorum > len(self.approvers):
            raise ValueError(
                f"the quorum ({self.quorum}) is more than the {len(self.approvers)} "
                f"approver{'s' if len(self.approvers) != 1 else ''} named"
            )
        eligible = [a for a in self.approvers if a != self.requester or self.allow_self]
        if len(eligible) < self.quorum:
            raise ValueError(
                "you cannot approve your own request: name other approvers"
                if not eligible
                else f"only {len(eligible)} of the approvers can approve (not the requester), "
                f"fewer than the quorum of {self.quorum}"
            )
        if self.timeout <= timedelta(0):
            raise ValueError("the timeout must be longer than zero")
        if not self.text.strip():
            raise ValueError("say what needs approving")
        if len(self.text) > MAX_TEXT:
            raise ValueError(
                f"the request is {len(self.text):,} characters long; at most {MAX_TEXT:,} "
                "can be shown to approvers: shorten it, or link to the details"
            )
        return self

    @property
    def outcome(self) -> str | None:
        if self.denied_by:
            return DENIED
        if len(self.approved_by) >= self.quorum:
            return APPROVED
        if self.timed_out:
            return TIMED_OUT
        return None

    @property
    def deadline(self) -> datetime | None:
        return None if self.requested_at is None else self.requested_at + self.timeout

    def summary(self) -> Summary:
        people = {}
        for user in self.approvers:
            if user == self.denied_by:
                people[user] = DENIED
            elif user in self.approved_by:
                people[user] = APPROVED
            elif self.outcome is None:
                people[user] = "waiting"
            else:
                people[user] = "did not answer"
        return Summary(
            title=self.text, started_by=self.requester, people=people, outcome=self.outcome or ""
        )

    def definition(self) -> Any:
        return S(
            Step("start", self.start),
            *[Go(f"ask {user}", self.ask, id=f"ask-{user}") for user in self.approvers],
            Go(
                "watch deadline",
                Wait(
                    "deadline",
                    On("timeout", Timeout(after=self.timeout), Step("time out", self.time_out)),
                ),
            ),
            WaitFor("decided", self.outcome is not None, self.mark_decided),
            Step("tell requester", self.tell_requester),
            Return(self.result()),
        )

    def ask(self, thread_id: str) -> Any:
        user = thread_id.removeprefix("ask-")
        return Wait(
            f"decision {user}",
            On(
                f"action {user}",
                WaitForUserAction(
                    approvers=[user],
                    requester=self.requester,
                    text=self.text,
                    on_decision=self.decide,
                    quorum=self.quorum,
                    deadline=self.deadline,
                    allow_self=self.allow_self,
                    panel=len(self.approvers),
                ),
            ),
        )

    def start(self) -> None:
        self.requested_at = datetime.now(UTC)

    def decide(self, user: str, decision: str, reason: str) -> None:
        if decision == APPROVE:
            if user not in self.approved_by:
                self.approved_by.append(user)
        elif not self.denied_by:
            self.denied_by, self.reason = user, reason

    def mark_decided(self) -> None:
        self.decided_at = datetime.now(UTC)

    def time_out(self) -> None:
        self.timed_out = True

    async def tell_requester(self) -> None:
        outcome = self.outcome
        assert outcome is not None
        await self.service(Notifier).tell_requester(self, outcome)  # type: ignore[type-abstract]

    async def on_failure(self, error: str) -> None:
        await self.service(Notifier).tell_requester(self, FAILED, error)  # type: ignore[type-abstract]

    async def on_cancel(self, reason: str, actor: str) -> None:
        await self.service(Notifier).tell_requester(self, CANCELLED, reason, by=actor)  # type: ignore[type-abstract]

    def result(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "approved_by": self.approved_by,
            "denied_by": self.denied_by,
            "reason": self.reason,
        }
