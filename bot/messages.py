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
FULL_REQUEST_ACTION = "approval_full_request"
BUTTON_ACTION = "wait_button"
DENY_VIEW = "approval_deny_reason"
PREVIEW_MAX = 2800  # of the request text in a message; the rest is one click away
MODAL_BLOCKS_MAX = 100
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
REASON_MAX = 1000


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview(text: str, limit: int = PREVIEW_MAX) -> str:
    """The start of `text`, cut at a line break (or else a space) near `limit`."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    for sep in ("\n", " "):
        at = head.rfind(sep)
        if at > limit * 3 // 4:
            head = head[:at]
            break
    return head.rstrip() + "…"


def chunks(text: str, size: int = SECTION_TEXT_MAX) -> list[str]:
    """`text` whole, in pieces of at most `size`, split at line breaks where possible."""
    pieces: list[str] = []
    while len(text) > size:
        at = text.rfind("\n", 0, size)
        if at < size // 2:
            at = text.rfind(" ", 0, size)
        if at < size // 2:
            at = size
        pieces.append(text[:at])
        text = text[at:].lstrip("\n") if text[at : at + 1] == "\n" else text[at:]
    pieces.append(text)
    return [p for p in pieces if p.strip()] or [text]


def quote(text: str) -> str:
    """A block quote in mrkdwn: every line marked, so line breaks stay inside it."""
    return "\n".join(f">{line}" for line in text.split("\n"))


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
    approvers: int,
) -> dict[str, Any]:
    """The DM an approver gets: what, who asks, until when, Approve and Deny; a request
    too long for a message shows its start and a button that opens the whole of it."""
    value = encode_request(request)
    if approvers == 1:
        needed = "your approval"
    elif quorum == 1:
        needed = f"any one of {approvers} approvers"
    elif quorum == approvers:
        needed = f"all {approvers} approvers"
    else:
        needed = f"{quorum} of {approvers} approvers"
    details = f"Requested by {mention(requester)} · needs {needed}"
    if deadline is not None:
        details += f" · expires {slack_date(deadline)}"
    buttons = [
        button("Approve", APPROVE_ACTION, value, "primary"),
        button("Deny", DENY_ACTION, value, "danger"),
    ]
    shown = preview(text)
    if shown != text:
        buttons.append(button("View full request", FULL_REQUEST_ACTION, value))
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut("Approval requested", HEADER_TEXT_MAX)},
        },
        section(shown),
        context(details),
        {"type": "actions", "block_id": "decision", "elements": buttons},
    ]
    return {
        "text": cut(f"Approval requested by {mention(requester)}: {text}", FALLBACK_TEXT_MAX),
        "blocks": blocks_limited(blocks),
    }


def button_prompt(request: CallbackRequest, text: str, label: str) -> dict[str, Any]:
    """The DM of a `WaitForButton`: what it is about, and its one button."""
    return {
        "text": cut(text, FALLBACK_TEXT_MAX),
        "blocks": [
            section(text),
            {
                "type": "actions",
                "block_id": "press",
                "elements": [button(label, BUTTON_ACTION, encode_request(request), "primary")],
            },
        ],
    }


def button(label: str, action_id: str, value: str, style: str = "") -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_MAX)},
    }
    if style:
        element["style"] = style
    return element


def full_request_modal(requester: str, text: str) -> dict[str, Any]:
    """The whole request, across as many sections as it takes (the model caps the text
    so that it always fits)."""
    sections = [section(piece) for piece in chunks(text)]
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Approval request"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [context(f"Requested by {mention(requester)}"), *sections][:MODAL_BLOCKS_MAX],
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
            section(f"You are denying:\n{quote(preview(text, SECTION_TEXT_MAX // 2))}"),
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
