"""Block Kit payloads: pure functions from data to Slack messages and modals.

Every text is cut to Slack's limits, so a long description never makes a request fail.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from workflows import CallbackRequest

SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
HEADER_TEXT_MAX = 150
MODAL_TITLE_MAX = 24
CONTEXT_TEXT_MAX = 2000
MAX_BLOCKS = 50
FALLBACK_TEXT_MAX = 4000

APPROVE_ACTION = "approval_approve"
DENY_ACTION = "approval_deny"
DENY_VIEW = "approval_deny_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
REASON_MAX = 1000


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(user: str) -> str:
    return f"<@{user}>"


def mentions(users: list[str] | tuple[str, ...]) -> str:
    return ", ".join(mention(u) for u in users)


def slack_date(when: datetime) -> str:
    """A date every reader sees in their own time zone."""
    stamp = int(when.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{when.isoformat()}>"


def encode_request(request: CallbackRequest) -> str:
    """The callback identity carried in a button value (Slack allows 2,000 characters)."""
    return json.dumps(
        {"w": request.workflow_id, "t": request.thread_id, "n": request.name, "p": request.pc},
        separators=(",", ":"),
    )


def decode_request(value: str) -> CallbackRequest:
    data = json.loads(value)
    return CallbackRequest(
        workflow_id=data["w"], thread_id=data["t"], name=data["n"], pc=int(data["p"])
    )


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_MAX)}}


def context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": cut(text, CONTEXT_TEXT_MAX)}],
    }


def blocks_limited(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return blocks[:MAX_BLOCKS]


def approval_request(
    request: CallbackRequest,
    *,
    requester: str,
    text: str,
    deadline: datetime | None,
    quorum: int,
    approvers: list[str],
) -> dict[str, Any]:
    """The DM an approver gets: what, who asks, until when, Approve and Deny."""
    value = encode_request(request)
    needed = "any one approver" if quorum == 1 else f"{quorum} of {len(approvers)} approvers"
    details = f"Requested by {mention(requester)} · needs {needed}"
    if deadline is not None:
        details += f" · expires {slack_date(deadline)}"
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut("Approval requested", HEADER_TEXT_MAX)},
        },
        section(text),
        context(details),
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "style": "primary",
                    "value": value,
                    "text": {"type": "plain_text", "text": cut("Approve", BUTTON_TEXT_MAX)},
                },
                {
                    "type": "button",
                    "action_id": DENY_ACTION,
                    "style": "danger",
                    "value": value,
                    "text": {"type": "plain_text", "text": cut("Deny", BUTTON_TEXT_MAX)},
                },
            ],
        },
    ]
    return {
        "text": cut(f"Approval requested by {mention(requester)}: {text}", FALLBACK_TEXT_MAX),
        "blocks": blocks_limited(blocks),
    }


def deny_modal(request: CallbackRequest, channel: str, text: str) -> dict[str, Any]:
    """The modal asking an approver why they deny."""
    metadata = json.dumps({"request": encode_request(request), "channel": channel})
    return {
        "type": "modal",
        "callback_id": DENY_VIEW,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": cut("Deny request", MODAL_TITLE_MAX)},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"You are denying:\n>{cut(text, SECTION_TEXT_MAX - 40)}"),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": REASON_MAX,
                    "placeholder": {"type": "plain_text", "text": "Why is this request denied?"},
                },
            },
        ],
    }


def outcome(
    kind: str, *, text: str, by: list[str] | None = None, reason: str = "", error: str = ""
) -> dict[str, Any]:
    """The DM telling the requester how their request ended."""
    quoted = f"\n>{cut(text, 1500)}"
    if kind == "approved":
        head = f":white_check_mark: Your request was *approved* by {mentions(by or [])}."
    elif kind == "denied":
        head = f":no_entry: Your request was *denied* by {mentions(by or [])}."
        if reason:
            head += f"\n*Reason:* {cut(reason, REASON_MAX)}"
    elif kind == "timed out":
        head = ":hourglass: Your request *timed out*: not enough approvers answered in time."
    else:
        head = f":warning: Your request *failed*: {cut(error, 500)}"
    return {"text": cut(f"{head}{quoted}", FALLBACK_TEXT_MAX), "blocks": [section(head + quoted)]}


def started(approvers: list[str], quorum: int, timeout: str) -> str:
    needed = "any one of" if quorum == 1 else f"{quorum} of"
    return (
        f"Approval request sent to {mentions(approvers)}; it needs {needed} them "
        f"within {timeout}. I will message you the outcome."
    )
