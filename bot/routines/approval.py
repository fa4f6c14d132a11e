"""The approval routine: a quorum of people approve, one Deny ends it, or time runs out.

    class Deploy(Workflow):
        requester: str
        sign_off: Approval = Field(default_factory=Approval)

        def definition(self) -> Stmt:
            return S(
                approval(self, "sign-off", self.sign_off, approvers=["U1", "U2"],
                         requester=self.requester, text="Deploy api 2.3", quorum=2),
                If(self.sign_off.outcome == APPROVED, Step("deploy", self.deploy)),
            )

Each approver gets a thread of their own waiting on `WaitForUserAction` (their Approve /
Deny DM stays up until they answer), a deadline thread waits on `Timeout`, and the
including thread waits until the outcome is in `state`, then carries on. The statement
and thread names start with `name`, so one workflow can ask for several approvals.

The rules are checked whenever the definition is built, so `new_workflow` (and the slash
command that calls it) refuses an approval that could never work, in the same words for
every workflow that asks for one: no approver, one named twice, a quorum below 1 or above
the approvers, a request only its requester could approve, an empty or too long text.

Threads cannot end one another: once the outcome is in, the approvers who did not answer
keep their DM (a click on it is refused as settled) until the including workflow ends,
which tears every open wait down; the deadline thread's timer then changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from bot.blueprint import UsageError
from bot.forms import InvalidField
from callbacks.timeout import Timeout
from callbacks.user_action import APPROVE, WaitForUserAction
from workflows import CallbackRejected, Go, On, S, Step, Wait, WaitFor, Workflow
from workflows.statements import Stmt

APPROVED = "approved"
DENIED = "denied"
TIMED_OUT = "timed out"

MAX_TEXT = 40_000
"""The longest request anyone can be shown whole: Slack's limit for a message's text, and
what the "View full request" modal holds in its sections."""

SETTLED = "This request was already decided, or you have already answered it."


class ApprovalRuleError(UsageError):
    """The approval asked for breaks a rule; the message says which, for the person who
    asked (a slash command shows it above its help)."""


class Approval(BaseModel):
    """Where an approval's outcome lands: a field of the including workflow."""

    quorum: int = 1
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    approved_by: list[str] = []
    denied_by: str = ""
    reason: str = ""
    timed_out: bool = False

    def people(self, approvers: Sequence[str]) -> dict[str, str]:
        """Where each approver stands, for a workflow's `summary()`."""
        people = {}
        for user in approvers:
            if user == self.denied_by:
                people[user] = DENIED
            elif user in self.approved_by:
                people[user] = APPROVED
            elif self.outcome is None:
                people[user] = "waiting"
            else:
                people[user] = "did not answer"
        return people

    @property
    def outcome(self) -> str | None:
        """`approved`, `denied` or `timed out`; None while undecided."""
        if self.denied_by:
            return DENIED
        if len(self.approved_by) >= self.quorum:
            return APPROVED
        if self.timed_out:
            return TIMED_OUT
        return None


def check_rules(
    *,
    approvers: Sequence[str],
    requester: str,
    text: str,
    quorum: int = 1,
    timeout: timedelta = timedelta(hours=24),
    allow_self: bool = False,
) -> None:
    """Raise `ApprovalRuleError` unless the approval can be decided as asked."""
    _check_people(approvers, requester, quorum, allow_self)
    if timeout <= timedelta(0):
        raise ApprovalRuleError("the timeout must be longer than zero")
    if not text.strip():
        raise ApprovalRuleError("say what needs approving")
    if len(text) > MAX_TEXT:
        raise ApprovalRuleError(
            f"the request is {len(text):,} characters long; at most {MAX_TEXT:,} "
            "can be shown to approvers: shorten it, or link to the details"
        )


def check_approvers(
    approvers: Sequence[str],
    requester: str,
    quorum: int = 1,
    *,
    allow_self: bool = False,
    field: str = "approvers",
) -> None:
    """The rules on who approves, for a launch with a form: a break of them is shown
    under the form's `field` input (`InvalidField`), before anything starts."""
    try:
        _check_people(approvers, requester, quorum, allow_self)
    except ApprovalRuleError as e:
        raise InvalidField(field, str(e)) from None


def _check_people(approvers: Sequence[str], requester: str, quorum: int, allow_self: bool) -> None:
    if not approvers:
        raise ApprovalRuleError("name at least one approver")
    if len(set(approvers)) != len(approvers):
        raise ApprovalRuleError("each approver can be named only once")
    if quorum < 1:
        raise ApprovalRuleError(f"the quorum must be at least 1 (it is {quorum})")
    if quorum > len(approvers):
        raise ApprovalRuleError(
            f"the quorum ({quorum}) is more than the {len(approvers)} "
            f"approver{'s' if len(approvers) != 1 else ''} named"
        )
    eligible = [a for a in approvers if a != requester or allow_self]
    if len(eligible) < quorum:
        raise ApprovalRuleError(
            "you cannot approve your own request: name other approvers"
            if not eligible
            else f"only {len(eligible)} of the approvers can approve (not the requester), "
            f"fewer than the quorum of {quorum}"
        )


def approval(
    workflow: Workflow,
    name: str,
    state: Approval,
    *,
    approvers: Sequence[str],
    requester: str,
    text: str,
    quorum: int = 1,
    timeout: timedelta = timedelta(hours=24),
    allow_self: bool = False,
) -> Stmt:
    """The statements of one approval, their names prefixed with `name` (`"sign-off:
    start"`, `"sign-off: decided"`, threads `"sign-off: ask-U1"`); its outcome lands in
    `state`, a field of `workflow`. The statements end once the outcome is in. An empty
    `name` keeps the names `/approval` has always used (its waiting requests carry on)."""
    check_rules(
        approvers=approvers,
        requester=requester,
        text=text,
        quorum=quorum,
        timeout=timeout,
        allow_self=allow_self,
    )
    return _Approval(
        workflow, name, state, list(approvers), requester, text, quorum, timeout, allow_self
    ).statements()


@dataclass
class _Approval:
    """One approval's statements and the steps and handlers they run (closures over
    `state`, so what they change is the workflow's data)."""

    workflow: Workflow
    name: str
    state: Approval
    approvers: list[str]
    requester: str
    text: str
    quorum: int
    timeout: timedelta
    allow_self: bool

    @property
    def prefix(self) -> str:
        return f"{self.name}: " if self.name else ""

    @property
    def threads(self) -> str:
        return f"{self.name}: ask-" if self.name else "ask-"

    def statements(self) -> Stmt:
        p = self.prefix
        asks = [Go(f"{p}ask {u}", self.ask, id=f"{self.threads}{u}") for u in self.approvers]
        return S(
            Step(f"{p}start", self.start),
            *asks,
            Go(
                f"{p}watch deadline",
                Wait(
                    f"{p}deadline",
                    On(
                        f"{p}timeout",
                        Timeout(after=self.timeout),
                        Step(f"{p}time out", self.time_out),
                    ),
                ),
            ),
            WaitFor(f"{p}decided", self.state.outcome is not None, self.mark_decided),
        )

    def ask(self, thread_id: str) -> Any:
        user = thread_id.removeprefix(self.threads)
        deadline = (
            None if self.state.requested_at is None else self.state.requested_at + self.timeout
        )
        return Wait(
            f"{self.prefix}decision {user}",
            On(
                f"{self.prefix}action {user}",
                WaitForUserAction(
                    approvers=[user],
                    requester=self.requester,
                    text=self.text,
                    on_decision=self.decide,
                    quorum=self.quorum,
                    deadline=deadline,
                    allow_self=self.allow_self,
                    panel=len(self.approvers),
                ),
            ),
        )

    def start(self) -> None:
        self.state.quorum = self.quorum
        self.state.requested_at = self.workflow.now()

    def decide(self, user: str, decision: str, reason: str) -> None:
        if self.state.outcome is not None:
            raise CallbackRejected(SETTLED)
        if decision == APPROVE:
            if user not in self.state.approved_by:
                self.state.approved_by.append(user)
        elif not self.state.denied_by:
            self.state.denied_by, self.state.reason = user, reason

    def mark_decided(self) -> None:
        self.state.decided_at = self.workflow.now()

    def time_out(self) -> None:
        if self.state.outcome is None:  # a deadline that passes after the decision is moot
            self.state.timed_out = True
