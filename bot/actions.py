"""Approve and Deny buttons, and the modal asking why.

Listeners translate between Slack and the engine, which decides; a decision is stored
before Slack is told the click went through (within its 3 seconds).
Every refusal (not an approver, the requester, a finished request, a second click) reaches
the person as an ephemeral message and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.commands import ACK_DEADLINE
from bot.priority import RequestsFirst
from callbacks.user_action import APPROVE, DENY, WaitForUserAction
from workflows import (
    CallbackRejected,
    CallbackRequest,
    Engine,
    StaleCallback,
    WorkflowError,
    WorkflowFinished,
    WorkflowNotFound,
)

log = logging.getLogger("bot.actions")

STALE = "This request was already decided, or you have already answered it."
FINISHED = "This request is already closed."
GONE = "This request no longer exists."
BROKEN = "Something went wrong with this request; the team running the bot has been told."


def explain(error: Exception) -> str:
    """What to tell the person whose click was refused."""
    if isinstance(error, CallbackRejected):
        return str(error)
    if isinstance(error, StaleCallback):
        return STALE
    if isinstance(error, WorkflowFinished):
        return FINISHED
    if isinstance(error, WorkflowNotFound):
        return GONE
    log.error("callback failed: %s", error)
    return BROKEN


async def decide(
    engine: Engine, request: CallbackRequest, user: str, decision: str, reason: str = ""
) -> str:
    """Apply the decision; return the line to show the person."""
    try:
        await engine.on_callback(
            request, {"user": user, "decision": decision, "reason": reason}, actor=user
        )
    except WorkflowError as e:
        return explain(e)
    return (
        "Thanks, your approval is recorded."
        if decision == APPROVE
        else "You denied this request; the requester will be told why."
    )


async def pressed(engine: Engine, request: CallbackRequest, user: str) -> str:
    """Apply a press of a `WaitForButton`'s button; return the line to show the person."""
    try:
        await engine.on_callback(request, {"user": user}, actor=user)
    except StaleCallback:
        return "This was already done."
    except WorkflowError as e:
        return explain(e)
    return "Done."


async def ack_when_decided(ack: AsyncAck, applying: asyncio.Future[str], **ack_args: Any) -> None:
    """Acknowledge once the decision is applied: once Slack shows the click went through,
    the decision is stored, and a process dying before that makes Slack show an error, so
    the person clicks again. A slow database still gets its acknowledgement within 3 s."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(applying), ACK_DEADLINE)
    await ack(**ack_args)


def register(app: AsyncApp, engine: Engine, requests_first: RequestsFirst) -> None:
    """Listeners return once they have acknowledged (Bolt answers Slack then); what follows
    runs in the background: confirmations after the requests in flight are answered, the
    deny form at once (its trigger expires in 3 s)."""

    def applied(apply: Callable[[CallbackRequest, str], Awaitable[str]]) -> Any:
        """A button's listener: acknowledged once `apply` has applied the click, the
        person told what came of it afterwards."""

        async def click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            user = body["user"]["id"]
            try:
                request = messages.decode_request(body["actions"][0]["value"])
            except (KeyError, ValueError, TypeError):
                await ack()
                requests_first.later(tell(respond, "This button is not valid any more."))
                return
            applying = asyncio.ensure_future(apply(request, user))
            await ack_when_decided(ack, applying)
            requests_first.later(tell(respond, applying))

        return click

    app.action(messages.APPROVE_ACTION)(
        applied(lambda request, user: decide(engine, request, user, APPROVE))
    )
    app.action(messages.BUTTON_ACTION)(
        applied(lambda request, user: pressed(engine, request, user))
    )

    @app.action(messages.DENY_ACTION)
    async def deny(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        requests_first.later(open_deny_form(body, respond, client), urgent=True)

    async def open_deny_form(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        try:
            request = messages.decode_request(body["actions"][0]["value"])
        except (KeyError, ValueError, TypeError):
            await tell(respond, "This button is not valid any more.")
            return
        await ask_reason(engine, request, body, respond, client)

    @app.action(messages.FULL_REQUEST_ACTION)
    async def full_request(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        requests_first.later(open_full_request(body, respond, client), urgent=True)

    async def open_full_request(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """The whole request text in a modal, for the people who have a part in it."""
        user = body["user"]["id"]
        try:
            request = messages.decode_request(body["actions"][0]["value"])
            summary = (await engine.load(request.workflow_id)).summary()
        except (KeyError, ValueError, TypeError):
            await tell(respond, "This button is not valid any more.")
            return
        except WorkflowError as e:
            await tell(respond, explain(e))
            return
        if user not in summary.people and user != summary.started_by:
            await tell(respond, "Only the requester and the approvers can read this request.")
            return
        await open_modal(
            client,
            respond,
            body,
            messages.full_request_modal(summary.started_by, summary.title),
            "Slack could not open the request in time; please click again.",
        )

    @app.view(messages.DENY_VIEW)
    async def deny_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        try:
            values = view["state"]["values"]
            reason = str(values[messages.REASON_BLOCK][messages.REASON_INPUT]["value"] or "")
            meta = json.loads(view["private_metadata"])
            request = messages.decode_request(meta["request"])
            channel = str(meta.get("channel", ""))
        except (KeyError, ValueError, TypeError):
            await ack(
                response_action="errors",
                errors={messages.REASON_BLOCK: "This form is not valid any more."},
            )
            return
        if not reason.strip():
            await ack(
                response_action="errors",
                errors={messages.REASON_BLOCK: "Please say why you deny this request."},
            )
            return
        applying = asyncio.ensure_future(decide(engine, request, user, DENY, reason.strip()))
        await ack_when_decided(ack, applying)
        if channel:
            requests_first.later(_confirm_denial(client, channel, user, applying))


async def ask_reason(
    engine: Engine,
    request: CallbackRequest,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
) -> None:
    """Deny's modal asking why, for the wait `request` answers, once the person clicking
    may deny it (else they are told why not)."""
    user = body["user"]["id"]
    try:
        handler = await engine.check_callback(request)
        if isinstance(handler, WaitForUserAction):
            handler.check(user)
    except WorkflowError as e:
        await tell(respond, explain(e))
        return
    text = handler.text if isinstance(handler, WaitForUserAction) else ""
    channel = str(body.get("channel", {}).get("id", ""))
    await open_modal(
        client,
        respond,
        body,
        messages.deny_modal(request, channel, text),
        "Slack could not open the form in time; please click Deny again.",
    )


async def open_modal(
    client: AsyncWebClient,
    respond: AsyncRespond,
    body: dict[str, Any],
    view: dict[str, Any],
    again: str,
) -> None:
    """Open a modal on the click's trigger (valid for 3 s); if Slack refuses, say `again`."""
    try:
        await client.views_open(trigger_id=body["trigger_id"], view=view)
    except SlackApiError as e:
        title = (view.get("title") or {}).get("text", "a modal")
        log.warning("could not open %r: %s", title, e.response.get("error"))
        await tell(respond, again)


async def tell(respond: AsyncRespond, text: str | asyncio.Future[str]) -> None:
    """An ephemeral answer to the person who clicked (once their decision is applied)."""
    if not isinstance(text, str):
        text = await text
    await respond(response_type="ephemeral", replace_original=False, text=text)


async def _confirm_denial(
    client: AsyncWebClient, channel: str, user: str, applying: asyncio.Future[str]
) -> None:
    text = await applying
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as e:
        log.warning("could not confirm the denial: %s", e.response.get("error"))
