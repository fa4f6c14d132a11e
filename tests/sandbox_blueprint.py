"""A blueprint the sandbox's tests load beside the approval, as a user writes one:
`/release` opens a typed launch form (a select, a multi-users select, a bounded number, a
checkbox, a date, a multiline text), `/maintenance` one of the other inputs, filled in from
their defaults (a users select, a conversations select, a multi-select, a time, a date
and time), and `/ship NAME` sends a webhook to wherever `WEBHOOK_RECEIVER` points (in the
sandbox, its built-in receiver)."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, Field

from bot.blueprint import Blueprint, Invocation, Launch, UsageError
from bot.forms import ChannelId, Multiline, UserId
from bot.routines import webhook
from workflows import S, Step, Summary, Workflow

MODULE = __name__
BLUEPRINTS = f"bot.blueprints.approval,{MODULE}"


class Environment(enum.Enum):
    STAGING = "staging"
    PRODUCTION = "production"


class ReleaseForm(BaseModel):
    environment: Environment = Field(title="Environment")
    reviewers: list[UserId] = Field(title="Reviewers")
    canary_percent: int = Field(
        10, title="Canary share (%)", ge=1, le=50, description="Traffic that sees it first"
    )
    announce: bool = Field(True, title="Announce in #general")
    day: date = Field(title="Release day")
    notes: Annotated[str, Multiline()] = Field("", title="Notes")


class Release(Workflow):
    workflow_type = "release"

    requester: str
    environment: str
    reviewers: list[str]
    canary_percent: int
    announce: bool
    day: date
    notes: str

    def definition(self) -> Any:
        return S(Step("planned", self.planned))

    def planned(self) -> None:
        pass

    def summary(self) -> Summary:
        return Summary(
            title=f"Release to {self.environment} on {self.day.isoformat()}",
            started_by=self.requester,
            people={user: "reviewing" for user in self.reviewers},
        )


def release(invocation: Invocation, form: ReleaseForm) -> Release:
    return Release(
        requester=invocation.user,
        environment=form.environment.value,
        reviewers=form.reviewers,
        canary_percent=form.canary_percent,
        announce=form.announce,
        day=form.day,
        notes=form.notes,
    )


class System(enum.Enum):
    DATABASE = "database"
    CACHE = "cache"
    QUEUE = "queue"


class MaintenanceForm(BaseModel):
    reason: str = Field(title="Why", max_length=200)
    owner: UserId = Field("U0ALICE", title="Owner")
    channel: ChannelId = Field("C0GENERAL", title="Where to announce")
    systems: list[System] = Field([System.DATABASE], title="Systems")
    daily_at: time = Field(time(9, 30), title="Daily check at")
    starts: datetime = Field(datetime(2026, 12, 31, 14, 30, tzinfo=UTC), title="Starts")


class Maintenance(Workflow):
    workflow_type = "maintenance"

    requester: str
    reason: str
    owner: str
    channel: str
    systems: list[str]
    daily_at: time
    starts: datetime

    def definition(self) -> Any:
        return S(Step("planned", self.planned))

    def planned(self) -> None:
        pass

    def summary(self) -> Summary:
        return Summary(
            title=f"Maintenance of {', '.join(self.systems)} from {self.starts:%Y-%m-%d %H:%M} UTC",
            started_by=self.requester,
            people={self.owner: "owner"},
        )


def maintenance(invocation: Invocation, form: MaintenanceForm) -> Maintenance:
    return Maintenance(
        requester=invocation.user,
        reason=form.reason,
        owner=form.owner,
        channel=form.channel,
        systems=[s.value for s in form.systems],
        daily_at=form.daily_at,
        starts=form.starts,
    )


class Ship(Workflow):
    workflow_type = "ship"

    requester: str
    service_name: str
    url: str

    def definition(self) -> Any:
        return S(
            webhook(
                self,
                "tell deploys",
                url=self.url,
                payload={"service": self.service_name, "by": self.requester},
            )
        )

    def summary(self) -> Summary:
        return Summary(title=f"Ship {self.service_name}", started_by=self.requester)


def ship(invocation: Invocation) -> Ship:
    name = invocation.text.strip()
    if not name:
        raise UsageError("say what to ship")
    settings = invocation.settings
    if settings is None or not settings.webhook_receiver:
        raise UsageError("no webhook receiver is configured (WEBHOOK_RECEIVER)")
    return Ship(
        requester=invocation.user, service_name=name, url=f"{settings.webhook_receiver}deploys"
    )


blueprint = Blueprint(
    workflows=[Release, Maintenance, Ship],
    launches=[
        Launch(
            "/release", release, description="Plan a release", form=ReleaseForm, title="New release"
        ),
        Launch("/maintenance", maintenance, description="Plan maintenance", form=MaintenanceForm),
        Launch("/ship", ship, description="Ship a service", usage="NAME"),
    ],
)
