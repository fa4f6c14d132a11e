"""Telling the requester how their request ended, by DM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.blueprint import Parts
from bot.blueprints.approval.workflow import CANCELLED, ApprovalRequest, Notifier
from bot.messages import (
    FALLBACK_TEXT_MAX,
    REASON_MAX,
    cut,
    mention,
    mentions,
    preview,
    quote,
    section,
)
from bot.routines.approval import APPROVED, DENIED

if TYPE_CHECKING:
    from callbacks.slack import Posts


class SlackNotifier:
    """The approval workflow's `Notifier`: one DM to the requester."""

    def __init__(self, posts: Posts) -> None:
        self.posts = posts

    @classmethod
    def of(cls, parts: Parts) -> Notifier:
        """The service the blueprint declares (typed as the workflow's Protocol, so a
        mismatch is a type error)."""
        return cls(parts.posts)

    async def tell_requester(
        self, request: ApprovalRequest, outcome: str, detail: str = "", by: str = ""
    ) -> None:
        deciders = request.approved_by if outcome == APPROVED else [request.denied_by]
        payload = outcome_message(
            outcome,
            text=request.text,
            by=deciders if outcome in (APPROVED, DENIED) else None,
            reason=detail if outcome == CANCELLED else request.reason,
            error=detail,
            cancelled_by=by,
        )
        # The step may run again after a crash: posted at most once, searched for only
        # when an earlier run died while posting.
        await self.posts.post_once(
            request.workflow_id,
            request.requester,
            f"{request.workflow_id}:outcome:{outcome}",
            payload,
            since=request.decided_at or request.requested_at,
        )


def outcome_message(
    kind: str,
    *,
    text: str,
    by: list[str] | None = None,
    reason: str = "",
    error: str = "",
    cancelled_by: str = "",
) -> dict[str, Any]:
    """The DM telling the requester how their request ended."""
    quoted = "\n" + quote(preview(text, 1500))
    if kind == "approved":
        head = f":white_check_mark: Your request was *approved* by {mentions(by or [])}."
    elif kind == "denied":
        head = f":no_entry: Your request was *denied* by {mentions(by or [])}."
        if reason:
            head += f"\n*Reason:* {cut(reason, REASON_MAX)}"
    elif kind == "timed out":
        head = ":hourglass: Your request *timed out*: not enough approvers answered in time."
    elif kind == "cancelled":
        who = mention(cancelled_by) if is_user(cancelled_by) else "an operator"
        head = f":no_entry_sign: Your request was *cancelled* by {who}."
        if reason:
            head += f"\n*Reason:* {cut(reason, REASON_MAX)}"
        head += "\nThe approvers' messages were withdrawn."
    else:
        head = f":warning: Your request *failed*: {cut(error, 500)}"
    return {"text": cut(f"{head}{quoted}", FALLBACK_TEXT_MAX), "blocks": [section(head + quoted)]}


def is_user(actor: str) -> bool:
    """Whether `actor` is a Slack user id (not an operator such as `cli:root`)."""
    return len(actor) > 1 and actor[0] in "UW" and actor[1:].isalnum() and actor.isupper()
