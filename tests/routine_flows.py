"""A blueprint of the tests' own that includes the routines, as a user's would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from bot.blueprint import Blueprint, Invocation, Launch, Parts
from bot.routines import Approval, approval, notify, webhook
from bot.routines.approval import APPROVED
from workflows import If, Return, S, Workflow
from workflows.statements import Stmt

CHANNEL = "C0GENERAL"


class Release(Workflow):
    """One approval, then the requester is told in a DM and the channel hears of it."""

    workflow_type = "release"

    requester: str
    approvers: list[str]
    version: str
    quorum: int = 1
    sign_off: Approval = Field(default_factory=Approval)

    def definition(self) -> Stmt:
        return S(
            approval(
                self,
                "sign-off",
                self.sign_off,
                approvers=self.approvers,
                requester=self.requester,
                text=f"Release {self.version}",
                quorum=self.quorum,
                timeout=timedelta(hours=1),
            ),
            notify(
                self,
                "tell requester",
                to=self.requester,
                text=f"Release {self.version}: {self.sign_off.outcome}",
            ),
            If(
                self.sign_off.outcome == APPROVED,
                notify(self, "announce", to=CHANNEL, text=f"Releasing {self.version}"),
            ),
        )


class Clearance(Workflow):
    """Two approvals in sequence: legal first, then security, each by its own people."""

    workflow_type = "clearance"

    requester: str
    legal_team: list[str]
    security_team: list[str]
    legal: Approval = Field(default_factory=Approval)
    security: Approval = Field(default_factory=Approval)

    def definition(self) -> Stmt:
        return S(
            approval(
                self,
                "legal",
                self.legal,
                approvers=self.legal_team,
                requester=self.requester,
                text="Clearance: legal",
            ),
            If(self.legal.outcome != APPROVED, Return("refused by legal")),
            approval(
                self,
                "security",
                self.security,
                approvers=self.security_team,
                requester=self.requester,
                text="Clearance: security",
            ),
            Return(self.security.outcome),
        )


class Announcement(Workflow):
    """One notification to `to` (a user or a channel)."""

    workflow_type = "announcement"

    to: str
    text: str

    def definition(self) -> Stmt:
        return S(notify(self, "announce", to=self.to, text=self.text))


class Delivery(Workflow):
    """One webhook, then a step that says it went through."""

    workflow_type = "delivery"

    url: str
    payload: dict[str, Any]
    secret: str | None = None
    delivered: bool = False

    def definition(self) -> Stmt:
        return S(
            webhook(self, "deliver", url=self.url, payload=self.payload, secret=self.secret),
            Return("delivered"),
        )

    async def on_failure(self, error: str) -> None:
        self.service(Failures).told.append(error)


class Failures:
    """What `on_failure` was told, for the tests to read."""

    def __init__(self) -> None:
        self.told: list[str] = []


def start_release(command: Invocation) -> Release:
    words = command.text.split()
    approvers = [w.removeprefix("<@").split("|")[0].rstrip(">") for w in words[:-1]]
    return Release(requester=command.user, approvers=approvers, version=words[-1])


def _failures(parts: Parts) -> Failures:
    return Failures()


blueprint = Blueprint(
    workflows=[Release, Clearance, Announcement, Delivery],
    launches=[Launch("/release", start_release, description="Release a version")],
    services=[_failures],
)
