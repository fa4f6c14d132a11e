"""`/access`: temporary access to a resource, approved, granted, and revoked on time.

    /access                                                   opens the form
    /access resource=production-db duration=2h reason="INC-42" approvers=@alice

Once approved, a signed webhook grants the access; the requester gets a DM saying until
when, with an **I'm done** button. When the time is up (a durable timer) or the button is
pressed, a second webhook revokes it and the requester is told. Both webhooks carry an
idempotency key (the request and `grant` / `revoke`), the same on every attempt, so
however often a crash makes a delivery repeat, the receiver grants once and revokes once.
A request cancelled while access is granted still revokes it.

Settings, from the environment or `.env`: `ACCESS_RESOURCES` (comma-separated),
`ACCESS_APPROVERS` (the default approvers' user IDs), `ACCESS_QUORUM`,
`ACCESS_MIN_DURATION` and `ACCESS_MAX_DURATION` (like `1m`, `8h`), `ACCESS_GRANT_URL` and
`ACCESS_REVOKE_URL` (unset: `WEBHOOK_RECEIVER` + `access-grant` / `access-revoke`, the
sandbox's receiver).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from bot.blueprint import Blueprint, Invocation, Launch
from bot.config import BlueprintSettings, CommaList, Duration
from bot.durations import format_duration
from bot.forms import Choices, Multiline, UserId
from bot.messages import mentions, slack_date
from bot.routines.approval import (
    APPROVED,
    Approval,
    approval,
    approval_cancelled,
    check_approvers,
)
from bot.routines.notify import Notifications, notify
from bot.routines.webhook import Webhooks, webhook, webhook_url
from callbacks.button import WaitForButton
from callbacks.timeout import Timeout
from workflows import If, On, Return, S, Step, Summary, Wait, Workflow
from workflows.statements import Stmt


class AccessSettings(BlueprintSettings):
    model_config = BlueprintSettings.prefixed("ACCESS_")

    resources: CommaList = ["production-db", "admin-console", "billing"]
    approvers: CommaList = []
    quorum: int = Field(1, ge=1)
    min_duration: Duration = timedelta(minutes=1)
    max_duration: Duration = timedelta(hours=8)
    grant_url: str = ""
    revoke_url: str = ""


SETTINGS = AccessSettings()


class AccessForm(BaseModel):
    """What the requester fills in."""

    resource: Annotated[str, Choices(SETTINGS.resources)] = Field(title="Resource")
    duration: timedelta = Field(
        timedelta(hours=1),
        title="For how long",
        ge=SETTINGS.min_duration,
        le=SETTINGS.max_duration,
        description="Like 30m or 2h",
    )
    reason: Annotated[str, Multiline()] = Field(
        title="Reason", min_length=1, max_length=2000, examples=["INC-42"]
    )
    approvers: list[UserId] = Field(
        list(SETTINGS.approvers) or ...,  # the configured ones, or required
        title="Approvers",
        description="Who must approve",
    )


class Access(Workflow):
    workflow_type = "access"

    requester: str
    resource: str
    duration: timedelta
    reason: str
    approvers: list[str]
    quorum: int = 1
    grant_url: str
    revoke_url: str
    channel: str = ""
    sign_off: Approval = Field(default_factory=Approval)
    granted_at: datetime | None = None
    ended_by: str = ""
    """Who pressed I'm done (empty: the time ran out)."""
    revoked_at: datetime | None = None

    @model_validator(mode="after")
    def _short_enough(self) -> Access:
        if not SETTINGS.min_duration <= self.duration <= SETTINGS.max_duration:
            raise ValueError(
                f"access lasts from {format_duration(SETTINGS.min_duration)} to "
                f"{format_duration(SETTINGS.max_duration)}"
            )
        return self

    @property
    def until(self) -> datetime | None:
        return None if self.granted_at is None else self.granted_at + self.duration

    @property
    def text(self) -> str:
        return (
            f"Access to *{self.resource}* for {format_duration(self.duration)}\n"
            f"*Reason:* {self.reason}"
        )

    def asked(self) -> dict[str, Any]:
        """What the sign-off is asked, for `approval` and `approval_cancelled` alike."""
        return {
            "approvers": self.approvers,
            "requester": self.requester,
            "text": self.text,
            "quorum": self.quorum,
        }

    def definition(self) -> Stmt:
        return S(
            approval(self, "sign-off", self.sign_off, **self.asked(), channel=self.channel),
            If(
                self.sign_off.outcome != APPROVED,
                notify(self, "tell refused", to=self.requester, text=self.refused_text()),
                Return(self.result()),
            ),
            webhook(self, "grant", url=self.grant_url, payload=self.order("grant")),
            Step("granted", self.mark_granted),
            Wait(
                "in use",
                On(
                    "done",
                    WaitForButton(self.requester, self.granted_text(), "I'm done", self.done),
                ),
                On("expired", Timeout(after=self.duration)),
            ),
            webhook(self, "revoke", url=self.revoke_url, payload=self.order("revoke")),
            Step("revoked", self.mark_revoked),
            notify(self, "tell revoked", to=self.requester, text=self.revoked_text()),
            Return(self.result()),
        )

    def order(self, action: str) -> dict[str, Any]:
        """What the access system receives (the same body on every attempt)."""
        return {
            "action": action,
            "request": self.workflow_id,
            "resource": self.resource,
            "user": self.requester,
            "seconds": int(self.duration.total_seconds()),
            "reason": self.reason,
            "approved_by": self.sign_off.approved_by,
        }

    def mark_granted(self) -> None:
        self.granted_at = self.now()

    def done(self, user: str) -> None:
        self.ended_by = user

    def mark_revoked(self) -> None:
        self.revoked_at = self.now()

    def granted_text(self) -> str:
        until = f" until {slack_date(self.until)}" if self.until else ""
        return (
            f":unlock: Your access to *{self.resource}* is granted{until}. Press *I'm done* "
            "when you no longer need it."
        )

    def revoked_text(self) -> str:
        why = "as you asked" if self.ended_by else "its time is up"
        return f":lock: Your access to *{self.resource}* is revoked: {why}."

    def refused_text(self) -> str:
        if self.sign_off.denied_by:
            return (
                f":x: Your access to *{self.resource}* was denied by "
                f"<@{self.sign_off.denied_by}>: {self.sign_off.reason}"
            )
        return f":hourglass: Your access to *{self.resource}* was not approved in time."

    def result(self) -> dict[str, Any]:
        return {
            "outcome": self.sign_off.outcome,
            "granted_at": self.granted_at,
            "revoked_at": self.revoked_at,
        }

    async def on_cancel(self, reason: str, actor: str) -> None:
        """A cancel never leaves access behind: revoke what was granted (the same key as
        the revoke step, so a receiver that had it already ignores it)."""
        await approval_cancelled(
            self, "sign-off", self.sign_off, **self.asked(), reason=reason, actor=actor
        )
        text = f":no_entry_sign: Your access request for *{self.resource}* was cancelled."
        if self.granted_at is not None and self.revoked_at is None:
            await self.service(Webhooks).deliver(
                self.workflow_id, "revoke", self.revoke_url, self.order("revoke")
            )
            text += " The access is revoked."
        await self.service(Notifications).send(self.workflow_id, "cancel", self.requester, text)

    async def on_failure(self, error: str) -> None:
        await self.service(Notifications).send(
            self.workflow_id,
            "failure",
            self.requester,
            f":warning: Your access request for *{self.resource}* failed: {error}",
        )

    def summary(self) -> Summary:
        if self.revoked_at is not None:
            outcome = "revoked"
        elif self.granted_at is not None:
            outcome = ""  # still running: granted
        else:
            outcome = self.sign_off.outcome or ""
        return Summary(
            title=f"Access to {self.resource} for {format_duration(self.duration)}",
            started_by=self.requester,
            people=self.sign_off.people(self.approvers),
            outcome=outcome,
        )


def start(command: Invocation, form: AccessForm) -> Access:
    check_approvers(form.approvers, command.user, SETTINGS.quorum)
    settings = command.settings
    return Access(
        requester=command.user,
        quorum=SETTINGS.quorum,
        channel=command.channel,
        grant_url=webhook_url(SETTINGS.grant_url, settings, "access-grant", "ACCESS_GRANT_URL"),
        revoke_url=webhook_url(SETTINGS.revoke_url, settings, "access-revoke", "ACCESS_REVOKE_URL"),
        **form.model_dump(),
    )


def started(access: Access) -> str:
    return (
        f"Access to *{access.resource}* for {format_duration(access.duration)} sent for "
        f"approval to {mentions(access.approvers)}. I will message you at each stage."
    )


blueprint = Blueprint(
    workflows=[Access],
    launches=[
        Launch(
            "/access",
            start,
            description="Ask for temporary access",
            usage='[resource=production-db duration=2h reason="INC-42" approvers=@alice]',
            form=AccessForm,
            title="Request access",
            submit="Request",
            confirm=started,
        )
    ],
)
