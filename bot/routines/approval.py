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
from bot.durations import format_duration
from bot.forms import InvalidField
from bot.messages import mention, mentions, slack_date
from bot.routines.card import Ask, Cards, extension_line, record, settled_line
from callbacks.controls import RequesterControl
from callbacks.priority import background
from callbacks.timeout import Timeout
from callbacks.user_action import APPROVE, WaitForUserAction
from workflows import (
    CallbackRejected,
    For,
    Go,
    On,
    S,
    Step,
    Wait,
    WaitFor,
    Workflow,
    WorkflowError,
)
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
    """Where an approval's outcome lands: a field of the including workflow; and what
    its card shows (where the card is, the timeline, the extensions and nudges)."""

    quorum: int = 1
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    approved_by: list[str] = []
    denied_by: str = ""
    reason: str = ""
    timed_out: bool = False
    card: dict[str, str] = {}
    """Where the request card is (`channel`, `ts`, `permalink`); empty before it is."""
    card_note: str = ""
    timeline: list[str] = []
    """The request's moments, in order; each is a line in the card's thread."""
    extended: timedelta = timedelta(0)
    nudged_at: datetime | None = None
    nudges: int = 0

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
    channel: str = "",
) -> Stmt:
    """The statements of one approval, their names prefixed with `name` (`"sign-off:
    start"`, `"sign-off: decided"`, threads `"sign-off: ask-U1"`); its outcome lands in
    `state`, a field of `workflow`. The statements end once the outcome is in. An empty
    `name` keeps the names `/approval` has always used (its waiting requests carry on).
    `channel` is where the request was made: its card goes there (bot.routines.card)."""
    check_rules(
        approvers=approvers,
        requester=requester,
        text=text,
        quorum=quorum,
        timeout=timeout,
        allow_self=allow_self,
    )
    return _Approval(
        workflow,
        state,
        Ask(workflow.workflow_id, name, list(approvers), requester, text, quorum, timeout),
        allow_self,
        channel,
    ).statements()


async def approval_cancelled(
    workflow: Workflow,
    name: str,
    state: Approval,
    *,
    approvers: Sequence[str],
    requester: str,
    text: str,
    quorum: int = 1,
    timeout: timedelta = timedelta(hours=24),
    reason: str,
    actor: str,
) -> None:
    """For the including workflow's `on_cancel`: the card and the approvers' records say
    the request was cancelled, by whom and why (the same arguments as `approval`)."""
    ask = Ask(workflow.workflow_id, name, list(approvers), requester, text, quorum, timeout)
    cancelled = (actor, reason)
    # Its line carries no time: `on_cancel` may run again (its data is not kept), and
    # must post the very same line.
    state.timeline.append(settled_line(ask, state, cancelled))
    await _show_on_home(workflow, ask, state, cancelled)
    cards = _cards(workflow)
    if cards is not None:
        await cards.refresh(ask, state, cancelled)
        await cards.keep_records(ask, state, f"{name}: ask-" if name else "ask-", cancelled)


EXTEND_LIMIT = timedelta(days=30)
"""How far past its first deadline a request can be extended, in all."""
NUDGE_EVERY = timedelta(hours=1)


async def _show_on_home(
    workflow: Workflow, ask: Ask, state: Approval, cancelled: tuple[str, str] | None = None
) -> None:
    """The people's App Homes show the approval as it stands (bot.home)."""
    from bot.home import show_on_home  # it imports this package (the card) in turn

    await show_on_home(workflow, ask, state, cancelled)


def _cards(workflow: Workflow) -> Cards | None:
    """The card service: the bot always has it (its base); an engine without it (a test
    kit's) runs the approval without a card."""
    try:
        return workflow.service(Cards)
    except WorkflowError:
        return None


@dataclass
class _Approval:
    """One approval's statements and the steps and handlers they run (closures over
    `state`, so what they change is the workflow's data)."""

    workflow: Workflow
    state: Approval
    ask: Ask
    allow_self: bool
    channel: str

    @property
    def prefix(self) -> str:
        return f"{self.ask.name}: " if self.ask.name else ""

    @property
    def threads(self) -> str:
        return f"{self.ask.name}: ask-" if self.ask.name else "ask-"

    def statements(self) -> Stmt:
        p = self.prefix
        asks = [
            Go(f"{p}ask {u}", self.ask_one, id=f"{self.threads}{u}") for u in self.ask.approvers
        ]
        deadline = self.ask.deadline(self.state)
        return S(
            Step(f"{p}start", self.start),
            *asks,
            # Its own thread, as background work: the approvers are asked first, and a
            # card put off for its channel's budget holds back nothing else.
            Go(
                f"{p}card",
                S(
                    Step(f"{p}show on home", self.show_on_home),
                    Step(f"{p}post card", self.post_card),
                ),
            ),
            Go(
                f"{p}watch deadline",
                For(
                    f"{p}until decided",
                    self.state.outcome is None,
                    Wait(
                        f"{p}deadline",
                        On(
                            f"{p}timeout",
                            Timeout(at=deadline) if deadline else Timeout(after=self.ask.timeout),
                            Step(f"{p}time out", self.time_out),
                            Step(f"{p}show timeout", self.show_now),
                        ),
                        On(
                            f"{p}extend",
                            RequesterControl(self.ask.requester, self.extend),
                            Step(f"{p}show extension", self.show_extension),
                        ),
                        On(
                            f"{p}nudge",
                            RequesterControl(self.ask.requester, self.nudge),
                            Step(f"{p}remind", self.remind),
                        ),
                    ),
                ),
            ),
            WaitFor(f"{p}decided", self.state.outcome is not None),
            # The card shows the outcome once the waits it ended are torn down
            # (`close_card`): what follows (telling the requester) waits for no card.
            Step(f"{p}show outcome", self.show_outcome),
        )

    def ask_one(self, thread_id: str) -> Any:
        user = thread_id.removeprefix(self.threads)
        return Wait(
            f"{self.prefix}decision {user}",
            On(
                f"{self.prefix}action {user}",
                WaitForUserAction(
                    approvers=[user],
                    requester=self.ask.requester,
                    text=self.ask.text,
                    on_decision=self.decide,
                    quorum=self.ask.quorum,
                    deadline=self.ask.deadline(self.state),
                    allow_self=self.allow_self,
                    panel=len(self.ask.approvers),
                    record=self.record,
                    closed=self.close_card,
                ),
                Step(f"{self.prefix}show {user}", self.refresh),
            ),
        )

    # --- steps -----------------------------------------------------------------------------

    def start(self) -> None:
        self.state.quorum = self.ask.quorum
        self.state.requested_at = self.workflow.now()

    async def show_on_home(self) -> None:
        # A step of its own: the card's post may be put off again and again for its
        # channel's budget, and this is written once.
        await _show_on_home(self.workflow, self.ask, self.state)

    async def post_card(self) -> None:
        cards = _cards(self.workflow)
        if cards is not None:
            with background():
                await cards.post(self.ask, self.state, self.channel)

    async def refresh(self) -> None:
        await _show_on_home(self.workflow, self.ask, self.state)
        cards = _cards(self.workflow)
        if cards is not None and self.state.outcome is None:
            # Once the outcome is in, `close_card` shows it (with its time): one update.
            await cards.refresh(self.ask, self.state)

    async def show_now(self) -> None:
        await _show_on_home(self.workflow, self.ask, self.state)
        cards = _cards(self.workflow)
        if cards is not None:
            await cards.refresh(self.ask, self.state)

    async def show_extension(self) -> None:
        await _show_on_home(self.workflow, self.ask, self.state)
        cards = _cards(self.workflow)
        if cards is not None:
            await cards.show_deadline(self.ask, self.state, self.threads)
            await cards.refresh(self.ask, self.state)

    async def remind(self) -> None:
        cards = _cards(self.workflow)
        if cards is not None:
            await cards.remind(self.ask, self.state, self.pending())
            await cards.refresh(self.ask, self.state)

    async def close_card(self) -> None:
        """When an approver's wait is torn down (a teardown: durable, retried, and after
        the workflow ends too): once the outcome is in, the card shows it for good, and
        the records left earlier say how it ended. The first teardown after the decision
        does it; the others find the card already showing it and ask Slack nothing."""
        cards = _cards(self.workflow)
        if cards is not None and self.state.outcome is not None:
            await cards.settle(self.ask, self.state, self.channel, self.threads)

    async def show_outcome(self) -> None:
        """The Homes show the outcome at once; the card shows it from `close_card`."""
        if self.state.decided_at is None:  # stamped by the click that decided it
            self.state.decided_at = self.workflow.now()
        await _show_on_home(self.workflow, self.ask, self.state)

    def time_out(self) -> None:
        if self.state.outcome is None:  # a deadline that passes after the decision is moot
            self.state.timed_out = True
            self.state.timeline.append(
                f"Timed out · {len(self.state.approved_by)} of {self.ask.quorum} approved"
            )

    # --- handlers: what a click changes ----------------------------------------------------

    def decide(self, user: str, decision: str, reason: str) -> None:
        if self.state.outcome is not None:
            raise CallbackRejected(self.settled())
        if user in self.state.approved_by or user == self.state.denied_by:
            raise CallbackRejected(SETTLED)
        if decision == APPROVE:
            self.state.approved_by.append(user)
            self.state.timeline.append(f"{mention(user)} approved")
        else:
            self.state.denied_by, self.state.reason = user, reason
            self.state.timeline.append(f"{mention(user)} denied: {reason}")
        if self.state.outcome is not None:
            self.state.decided_at = self.workflow.now()

    def settled(self) -> str:
        """What a click on a settled request reads: who settled it, how, when."""
        ended = settled_line(self.ask, self.state)
        return f"Already {ended[:1].lower()}{ended[1:]}." if ended else SETTLED

    def extend(self, user: str, input: dict[str, Any]) -> None:
        try:
            by = timedelta(seconds=int(input.get("seconds", 0)))
        except (TypeError, ValueError):
            raise CallbackRejected("Choose how long to extend the request by.") from None
        if by <= timedelta(0):
            raise CallbackRejected("Choose how long to extend the request by.")
        if self.state.extended + by > EXTEND_LIMIT:
            left = EXTEND_LIMIT - self.state.extended
            raise CallbackRejected(
                f"A request can be extended by {format_duration(EXTEND_LIMIT)} in all; "
                + (f"at most {format_duration(left)} more." if left else "it has been.")
            )
        self.state.extended += by
        self.state.timeline.append(
            extension_line(self.ask.requester, by, self.ask.deadline(self.state))
        )

    def nudge(self, user: str, input: dict[str, Any]) -> None:
        now = self.workflow.now()
        if self.state.nudged_at is not None and now < self.state.nudged_at + NUDGE_EVERY:
            again = self.state.nudged_at + NUDGE_EVERY
            raise CallbackRejected(
                f"You nudged the approvers at {slack_date(self.state.nudged_at)}; you can "
                f"nudge them again {slack_date(again)}."
            )
        pending = self.pending()
        if not pending:
            raise CallbackRejected("Every approver has answered already.")
        self.state.nudged_at = now
        self.state.nudges += 1
        self.state.timeline.append(f"{mention(self.ask.requester)} nudged {mentions(pending)}")

    def pending(self) -> list[str]:
        return [
            u
            for u in self.ask.approvers
            if u not in self.state.approved_by and u != self.state.denied_by
        ]

    def record(self, user: str, answered: bool) -> dict[str, Any] | None:
        if not answered and self.state.outcome is None:
            return None  # cancelled (its on_cancel keeps the records) or failed
        return record(self.ask, self.state, user, self.state.card.get("permalink", ""))
