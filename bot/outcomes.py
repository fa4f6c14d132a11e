"""Telling the requester how their request ended, by DM."""

from __future__ import annotations

from bot import messages
from callbacks.slack import Posts
from workflows.approval import APPROVED, CANCELLED, DENIED, ApprovalRequest


class SlackNotifier:
    """The approval workflow's `Notifier`: one DM to the requester."""

    def __init__(self, posts: Posts) -> None:
        self.posts = posts

    async def tell_requester(
        self, request: ApprovalRequest, outcome: str, detail: str = "", by: str = ""
    ) -> None:
        deciders = request.approved_by if outcome == APPROVED else [request.denied_by]
        payload = messages.outcome(
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
