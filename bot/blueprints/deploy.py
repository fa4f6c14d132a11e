"""`/deploy`: someone asks for a deploy, approvers sign it off, the deploy system is told.

    /deploy                                                 opens the form
    /deploy service=api version=2.3 approvers=@alice         starts at once
    /deploy help                                            lists the fields

Once approved, a signed webhook (bot.routines.webhook) hands the deploy system what to
deploy; the requester is told how it went either way. Settings, from the environment or
`.env`:

- `DEPLOY_SERVICES`: what can be deployed, comma-separated (the form offers them);
- `DEPLOY_APPROVERS`: the user IDs the form names as approvers unless the person names
  others; `DEPLOY_QUORUM`: how many must approve (default 1);
- `DEPLOY_WEBHOOK_URL`: the deploy system's endpoint (unset: `WEBHOOK_RECEIVER` +
  `deploy`, which the sandbox points at its built-in receiver).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from bot.blueprint import Blueprint, Invocation, Launch
from bot.config import BlueprintSettings, CommaList
from bot.forms import Choices, Multiline, UserId
from bot.messages import mentions
from bot.routines.approval import (
    APPROVED,
    Approval,
    approval,
    approval_cancelled,
    check_approvers,
)
from bot.routines.notify import Notifications, notify
from bot.routines.webhook import webhook, webhook_url
from workflows import If, S, Step, Summary, Workflow
from workflows.statements import Stmt


class DeploySettings(BlueprintSettings):
    model_config = BlueprintSettings.prefixed("DEPLOY_")

    services: CommaList = ["api", "web", "worker"]
    approvers: CommaList = []
    quorum: int = Field(1, ge=1)
    webhook_url: str = ""


SETTINGS = DeploySettings()
VERSION = re.compile(r"^[\w.+-]{1,64}$")


class DeployForm(BaseModel):
    """What the requester fills in."""

    service: Annotated[str, Choices(SETTINGS.services)] = Field(title="Service")
    version: str = Field(
        title="Version", description="The version or tag to deploy", examples=["2.3"]
    )
    approvers: list[UserId] = Field(
        list(SETTINGS.approvers) or ...,  # the configured ones, or required
        title="Approvers",
        description="Who must approve",
    )
    notes: Annotated[str, Multiline()] = Field("", title="Notes", max_length=2000)

    @field_validator("version")
    @classmethod
    def _a_version(cls, version: str) -> str:
        if not VERSION.match(version):
            raise ValueError(
                "a version is one word of letters, digits, dots, dashes or plus signs, "
                "like 2.3 or v2.3.1-rc1"
            )
        return version


class Deploy(Workflow):
    workflow_type = "deploy"

    requester: str
    service_name: str
    version: str
    notes: str = ""
    approvers: list[str]
    quorum: int = 1
    url: str
    channel: str = ""
    sign_off: Approval = Field(default_factory=Approval)
    deployed: bool = False

    @property
    def text(self) -> str:
        notes = f"\n{self.notes}" if self.notes else ""
        return f"Deploy *{self.service_name}* version *{self.version}*{notes}"

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
                self.sign_off.outcome == APPROVED,
                webhook(self, "deploy", url=self.url, payload=self.order()),
                Step("deployed", self.mark_deployed),
            ),
            notify(self, "tell requester", to=self.requester, text=self.outcome_text()),
        )

    def order(self) -> dict[str, Any]:
        """What the deploy system receives."""
        return {
            "request": self.workflow_id,
            "service": self.service_name,
            "version": self.version,
            "notes": self.notes,
            "requested_by": self.requester,
            "approved_by": self.sign_off.approved_by,
        }

    def mark_deployed(self) -> None:
        self.deployed = True

    def outcome_text(self) -> str:
        what = f"*{self.service_name}* {self.version}"
        if self.deployed:
            by = mentions(self.sign_off.approved_by)
            return f":rocket: The deploy of {what} was approved by {by} and handed over."
        if self.sign_off.denied_by:
            return (
                f":x: The deploy of {what} was denied by <@{self.sign_off.denied_by}>: "
                f"{self.sign_off.reason}"
            )
        return f":hourglass: The deploy of {what} was not approved in time."

    async def on_cancel(self, reason: str, actor: str) -> None:
        await approval_cancelled(
            self, "sign-off", self.sign_off, **self.asked(), reason=reason, actor=actor
        )

    async def on_failure(self, error: str) -> None:
        await self.service(Notifications).send(
            self.workflow_id,
            "failure",
            self.requester,
            f":warning: The deploy of *{self.service_name}* {self.version} failed: {error}",
        )

    def summary(self) -> Summary:
        outcome = "deployed" if self.deployed else self.sign_off.outcome or ""
        return Summary(
            title=f"Deploy {self.service_name} {self.version}",
            started_by=self.requester,
            people=self.sign_off.people(self.approvers),
            outcome=outcome,
        )


def start(command: Invocation, form: DeployForm) -> Deploy:
    check_approvers(form.approvers, command.user, SETTINGS.quorum)
    return Deploy(
        requester=command.user,
        service_name=form.service,
        version=form.version,
        notes=form.notes,
        approvers=form.approvers,
        quorum=SETTINGS.quorum,
        channel=command.channel,
        url=webhook_url(SETTINGS.webhook_url, command.settings, "deploy", "DEPLOY_WEBHOOK_URL"),
    )


def started(deploy: Deploy) -> str:
    return (
        f"Deploy of *{deploy.service_name}* {deploy.version} sent for approval to "
        f"{mentions(deploy.approvers)}. I will message you the outcome."
    )


blueprint = Blueprint(
    workflows=[Deploy],
    launches=[
        Launch(
            "/deploy",
            start,
            description="Ask for a deploy",
            usage="[service=api version=2.3 approvers=@alice]",
            form=DeployForm,
            title="Request a deploy",
            submit="Request",
            confirm=started,
        )
    ],
)
