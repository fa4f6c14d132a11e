"""Routines: statements a workflow includes in its definition the way it includes a step.

Each is a function of the including workflow (steps take no arguments, so a routine
reaches the workflow's id, clock and services through it) returning statements whose
names start with the name it is given, so a workflow can include the same routine twice:
`approval` (a quorum of people decide, or a timeout), `notify` (a DM or a channel post, at
most once) and `webhook` (a signed POST, retried by the engine). They wait with the bot's
base wait conditions and reach the outside world through the base's services
(`Notifications`, `Webhooks`: bot.base), so any blueprint can include them.
"""

from __future__ import annotations

from bot.routines.approval import APPROVED, DENIED, TIMED_OUT, Approval, ApprovalRuleError, approval
from bot.routines.notify import Notifications, notify
from bot.routines.webhook import WebhookError, Webhooks, verify, webhook, webhook_url

__all__ = [
    "APPROVED",
    "DENIED",
    "TIMED_OUT",
    "Approval",
    "ApprovalRuleError",
    "Notifications",
    "WebhookError",
    "Webhooks",
    "approval",
    "notify",
    "verify",
    "webhook",
    "webhook_url",
]
