"""`/approval`: ask people to approve something; any N of M, one Deny ends it, a timeout.

The workflow (`ApprovalRequest`, with its rules as a validator) is in `.workflow`, the
command's parsing in `.command`, the outcome DM in `.outcomes`. It waits with the bot's
base wait conditions (`WaitForUserAction`'s Approve / Deny DMs and `Timeout`: bot.base),
so it brings no managers or listeners of its own, and needs no scope beyond the base's.
"""

from __future__ import annotations

from bot.blueprint import Blueprint, Launch
from bot.blueprints.approval.command import (
    DESCRIPTION,
    USAGE,
    USAGE_HINT,
    start_request,
    started,
)
from bot.blueprints.approval.outcomes import SlackNotifier
from bot.blueprints.approval.workflow import ApprovalRequest

blueprint = Blueprint(
    workflows=[ApprovalRequest],
    launches=[
        Launch(
            "/approval",
            start_request,
            description=DESCRIPTION,
            usage=USAGE_HINT,
            help=USAGE,
            confirm=started,
        )
    ],
    services=[SlackNotifier.of],
)
