"""The request card's buttons, for the requester: Cancel, Extend, Nudge.

Cancel asks for an optional reason, then cancels the workflow as an operator would (every
approver message is torn down; the workflow's `on_cancel` says so on the card and in the
approvers' records). Extend asks how long, then answers the approval's `extend` wait (the
deadline and its durable timer move). Nudge answers its `nudge` wait (the approvers who
have not answered are reminded, at most once an hour). Anyone but the requester, a
request already closed, and a nudge too soon get an ephemeral answer and change nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import explain, open_modal, tell
from bot.durations import format_duration
from bot.messages import MODAL_TITLE_MAX, REASON_MAX, cut, section
from bot.priority import RequestsFirst
from bot.routines.card import (
    CANCEL_ACTION,
    CANCEL_VIEW,
    EXTEND_ACTION,
    EXTEND_VIEW,
    NUDGE_ACTION,
    decode_value,
)
from workflows import CallbackRejected, Engine, WorkflowError
from workflows.state import TERMINAL

log = logging.getLogger("bot.requester")

EXTENSIONS = [timedelta(hours=1), timedelta(hours=4), timedelta(days=1), timedelta(days=3)]
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
BY_BLOCK, BY_INPUT = "by", "by_input"
ONLY_REQUESTER = "Only the requester can use this button."
CLOSED = "This request is already closed."
BUSY = "Your last press is still being handled; try again in a moment."


def register(app: AsyncApp, engine: Engine, requests_first: RequestsFirst) -> None:
    async def requester_of(workflow_id: str) -> str:
        return (await engine.load(workflow_id)).summary().started_by

    async def event(workflow_id: str, approval: str, name: str) -> Any:
        """The open wait the button answers; `LookupError` says why there is none: the
        request is closed, or the last press is still being handled (its wait comes
        back once it is)."""
        prefix = f"{approval}: " if approval else ""
        try:
            return await engine.waiting_request(workflow_id, f"{prefix}{name}")
        except LookupError:
            status = (await engine.get(workflow_id)).status
            raise LookupError(CLOSED if status in TERMINAL else BUSY) from None

    @app.action(CANCEL_ACTION)
    async def cancel(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        requests_first.later(open_form(body, respond, client, cancel_modal), urgent=True)

    @app.action(EXTEND_ACTION)
    async def extend(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        requests_first.later(open_form(body, respond, client, extend_modal), urgent=True)

    async def open_form(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, modal: Any
    ) -> None:
        async def check(workflow_id: str, approval: str, user: str) -> None:
            if await requester_of(workflow_id) != user:
                raise CallbackRejected(ONLY_REQUESTER)
            if modal is extend_modal:
                await event(workflow_id, approval, "extend")

        pressed = await press(body, respond, check)
        if pressed is not None:
            meta = json.dumps({"w": pressed[0], "a": pressed[1]})
            await open_modal(
                client, respond, body, modal(meta), "Slack could not open the form; try again."
            )

    @app.action(NUDGE_ACTION)
    async def nudge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        requests_first.later(nudged(body, respond), urgent=True)

    async def nudged(body: dict[str, Any], respond: AsyncRespond) -> None:
        async def apply(workflow_id: str, approval: str, user: str) -> None:
            request = await event(workflow_id, approval, "nudge")
            await engine.on_callback(request, {"user": user}, actor=user)

        if await press(body, respond, apply) is not None:
            await tell(respond, "The approvers who have not answered are reminded.")

    @app.view(CANCEL_VIEW)
    async def cancel_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        try:
            meta = json.loads(view["private_metadata"])
            workflow_id = str(meta["w"])
            reason = view["state"]["values"][REASON_BLOCK][REASON_INPUT].get("value") or ""
        except (KeyError, ValueError, TypeError):
            await ack(response_action="errors", errors={REASON_BLOCK: "This form is not valid."})
            return
        try:
            if await requester_of(workflow_id) != user:
                raise PermissionError(ONLY_REQUESTER)
            await engine.cancel(workflow_id, reason.strip(), actor=user)
        except PermissionError as e:
            await ack(response_action="errors", errors={REASON_BLOCK: str(e)})
            return
        except WorkflowError as e:
            await ack(response_action="errors", errors={REASON_BLOCK: explain(e)})
            return
        await ack()

    @app.view(EXTEND_VIEW)
    async def extend_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        try:
            meta = json.loads(view["private_metadata"])
            chosen = view["state"]["values"][BY_BLOCK][BY_INPUT]["selected_option"]["value"]
            seconds = int(chosen)
        except (KeyError, ValueError, TypeError):
            await ack(response_action="errors", errors={BY_BLOCK: "Choose how long."})
            return
        try:
            request = await event(str(meta["w"]), str(meta.get("a", "")), "extend")
            await engine.on_callback(request, {"user": user, "seconds": seconds}, actor=user)
        except LookupError as e:
            await ack(response_action="errors", errors={BY_BLOCK: str(e)})
            return
        except WorkflowError as e:
            await ack(response_action="errors", errors={BY_BLOCK: explain(e)})
            return
        await ack()


async def press(
    body: dict[str, Any],
    respond: AsyncRespond,
    act: Callable[[str, str, str], Awaitable[None]],
) -> tuple[str, str] | None:
    """Run `act(workflow id, approval, user)` for a card button's press: (workflow id,
    approval) once it went through, or None once the person has been told why not."""
    try:
        workflow_id, approval = decode_value(body["actions"][0]["value"])
        await act(workflow_id, approval, body["user"]["id"])
    except (KeyError, ValueError, TypeError):
        await tell(respond, "This button is not valid any more.")
        return None
    except LookupError as e:
        await tell(respond, str(e))
        return None
    except WorkflowError as e:
        await tell(respond, explain(e))
        return None
    return workflow_id, approval


def cancel_modal(metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CANCEL_VIEW,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": cut("Cancel request", MODAL_TITLE_MAX)},
        "submit": {"type": "plain_text", "text": "Cancel request"},
        "close": {"type": "plain_text", "text": "Keep it"},
        "blocks": [
            section("The approvers' messages are withdrawn, and they are told why."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": REASON_MAX,
                },
            },
        ],
    }


def extend_modal(metadata: str) -> dict[str, Any]:
    options = [
        {
            "text": {"type": "plain_text", "text": format_duration(by)},
            "value": str(int(by.total_seconds())),
        }
        for by in EXTENSIONS
    ]
    return {
        "type": "modal",
        "callback_id": EXTEND_VIEW,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Extend request"},
        "submit": {"type": "plain_text", "text": "Extend"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": BY_BLOCK,
                "label": {"type": "plain_text", "text": "Move the deadline by"},
                "element": {
                    "type": "static_select",
                    "action_id": BY_INPUT,
                    "options": options,
                    "initial_option": options[0],
                },
            }
        ],
    }
