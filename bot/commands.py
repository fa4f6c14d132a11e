"""Slash commands: from Slack, through a blueprint's `Launch`, to a stored workflow.

Every launch gets the same treatment: `help` (or `-h`, `--help`) answers with its help;
a `UsageError` or the model's own refusal (`pydantic.ValidationError`) gets the problem
above the help, ephemerally, and starts nothing; a good command is stored before it is
acknowledged, so once the person reads "started" nothing can lose it. A command shared by
several launches picks one by its first word (its subcommand).

A launch with a form (bot.forms) opens it as a modal when the command comes alone, or
when its `key=value` words leave required fields out (those given are filled in); with
every required field given and valid it starts at once. A submitted form that the model
refuses gets its errors under the inputs, and the modal stays open; an accepted one is
stored before the modal turns into the confirmation.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blueprint import Invocation, Launch, UsageError
from bot.forms import Form, FormErrors
from bot.messages import section
from bot.priority import RequestsFirst
from bot.settings import Settings
from workflows import Engine, Workflow

log = logging.getLogger("bot.commands")

ACK_DEADLINE = 2.0  # seconds to store the workflow before acknowledging anyway
HELP = ("help", "-h", "--help")
NOT_STARTED = ":x: Your request could not be started. Please try again."
FORM_VIEW = "launch_form"

_FIRST_WORD = re.compile(r"^\s*(\S+)")


def rule_error(error: ValidationError) -> UsageError:
    """The model's refusal, in the words it gave (pydantic prefixes "Value error, ")."""
    first = error.errors()[0]
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    return UsageError(message)


def choose(launches: Sequence[Launch[Any]], text: str) -> tuple[Launch[Any] | None, str]:
    """The launch `text` asks for and the text that is its own: the whole text for a
    command without subcommands, else what follows the subcommand (None: no subcommand
    of that name, or none given)."""
    if len(launches) == 1 and not launches[0].subcommand:
        return launches[0], text
    word = _FIRST_WORD.match(text)
    if word is None:
        return None, ""
    for launch in launches:
        if launch.subcommand == word.group(1).lower():
            return launch, text[word.end() :].lstrip(" ")
    return None, ""


def listing(command: str, launches: Sequence[Launch[Any]]) -> str:
    """The help of a command with subcommands: each one's usage and description."""
    lines = [f"*Usage:* `{command} SUBCOMMAND ...`"]
    for launch in launches:
        usage = f"{launch.name} {launch.usage}".rstrip()
        lines.append(f"• `{usage}`: {launch.description}")
    lines.append(f"`{command} SUBCOMMAND help` tells more about each.")
    return "\n".join(lines)


async def made(launch: Launch[Any], invocation: Invocation, form: BaseModel | None) -> Workflow:
    """The workflow `launch.start` makes of the command (and its form)."""
    workflow = launch.start(invocation) if form is None else launch.start(invocation, form)
    if inspect.isawaitable(workflow):
        workflow = await workflow
    assert isinstance(workflow, Workflow), f"{launch.name}: start returned {workflow!r}"
    return workflow


async def started(
    launch: Launch[Any], invocation: Invocation, engine: Engine, form: BaseModel | None = None
) -> str:
    """Make the workflow and store it; what to tell the person either way."""
    try:
        workflow = await made(launch, invocation, form)
        await engine.new_workflow(workflow)
    except ValidationError as e:
        return f":warning: {rule_error(e)}\n\n{launch.help_text}"
    except UsageError as e:
        return f":warning: {e}\n\n{launch.help_text}"
    except Exception:
        log.exception("could not start %s", launch.name)
        return NOT_STARTED
    return launch.confirmation(workflow)


def register(
    app: AsyncApp,
    engine: Engine,
    requests_first: RequestsFirst,
    commands: dict[str, list[Launch[Any]]],
    settings: Settings | None = None,
) -> None:
    """One Bolt listener per slash command, for all its launches, and one for the
    launches' forms."""
    for command, launches in commands.items():
        app.command(command)(_listener(command, launches, engine, requests_first, settings))
    forms = {launch.name: launch for each in commands.values() for launch in each}
    app.view(FORM_VIEW)(_form_listener(forms, engine, requests_first, settings))


def _listener(
    name: str,
    launches: list[Launch[Any]],
    engine: Engine,
    requests_first: RequestsFirst,
    settings: Settings | None,
) -> Any:
    async def command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        text = str(command.get("text", ""))
        launch, own = choose(launches, text)
        if launch is None:
            word = _FIRST_WORD.match(text)
            given = word.group(1) if word else ""
            shown = listing(name, launches)
            if given and given.lower() not in HELP:
                shown = f":warning: `{name}` has no subcommand `{given}`\n\n{shown}"
            await ack(response_type="ephemeral", text=shown)
            return
        word = _FIRST_WORD.match(own)
        if word is not None and word.group(1).lower() in HELP:
            await ack(response_type="ephemeral", text=launch.help_text)
            return
        invocation = Invocation(
            user=str(command.get("user_id", "")),
            text=own,
            command=name,
            channel=str(command.get("channel_id", "")),
            subcommand=launch.subcommand,
            payload=command,
            settings=settings,
        )
        form: BaseModel | None = None
        if launch.launch_form is not None:
            try:
                form = await _command_form(
                    launch, launch.launch_form, invocation, client, ack, respond
                )
            except UsageError as e:
                await ack(response_type="ephemeral", text=f":warning: {e}\n\n{launch.help_text}")
                return
            if form is None:  # the modal is opening
                return
        # Stored before acknowledging: an insert is milliseconds, and the deadline keeps
        # the answer within Slack's 3 s when the database is slow.
        replying = asyncio.ensure_future(started(launch, invocation, engine, form))
        try:
            text = await asyncio.wait_for(asyncio.shield(replying), ACK_DEADLINE)
        except TimeoutError:
            await ack(response_type="ephemeral", text="Recording your request…")
            requests_first.later(_report_late(replying, respond), urgent=True)
            return
        await ack(response_type="ephemeral", text=text)

    command.__name__ = f"command_{name.lstrip('/').replace('-', '_')}"
    return command


async def _command_form(
    launch: Launch[Any],
    form: Form,
    invocation: Invocation,
    client: AsyncWebClient,
    ack: AsyncAck,
    respond: AsyncRespond,
) -> BaseModel | None:
    """The form the command's words fill in whole; None once the modal is opening for
    what they leave out (`UsageError`: words that are no field or no value of it)."""
    values, missing = form.read_words(invocation.text)
    if not missing:
        try:
            return form.validate(values)
        except FormErrors as e:
            raise UsageError(f"the request has problems:\n{e.lines()}") from None
    trigger = str(invocation.payload.get("trigger_id", ""))
    view = form.modal(
        title=launch.form_title,
        callback_id=FORM_VIEW,
        private_metadata=json.dumps({"launch": launch.name, "channel": invocation.channel}),
        submit=launch.submit,
        initial=values,
        intro=f"*{launch.description}*"
        if not values
        else f"*{launch.description}*: fill in the rest.",
    )
    await ack()
    try:  # the trigger is valid for 3 s: opened at once, not deferred
        await client.views_open(trigger_id=trigger, view=view)
    except SlackApiError as e:
        log.warning("could not open the form of %s: %s", launch.name, e.response.get("error"))
        await respond(  # the command's response_url: any channel, no bot membership needed
            response_type="ephemeral",
            text=f"Slack could not open the form; please try again.\n\n{launch.help_text}",
        )
    return None


def _form_listener(
    launches: Mapping[str, Launch[Any]],
    engine: Engine,
    requests_first: RequestsFirst,
    settings: Settings | None,
) -> Any:
    async def form_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            launch = launches[str(meta["launch"])]
            form = launch.launch_form
            assert form is not None
            values = view["state"]["values"]
        except (KeyError, ValueError, TypeError, AssertionError):
            await ack(response_action="update", view=_closing("This form is not valid any more."))
            return
        try:
            filled = form.read_submission(values)
        except FormErrors as e:
            await ack(response_action="errors", errors=e.errors)
            return
        invocation = Invocation(
            user=str(body.get("user", {}).get("id", "")),
            text="",
            command=launch.command,
            channel=str(meta.get("channel", "")),
            subcommand=launch.subcommand,
            payload=body,
            settings=settings,
        )
        storing = asyncio.ensure_future(_store_form(launch, form, invocation, filled, engine))
        try:
            answer = await asyncio.wait_for(asyncio.shield(storing), ACK_DEADLINE)
        except TimeoutError:
            await ack(
                response_action="update",
                view=_closing("Recording your request…", launch.form_title),
            )
            late = _report_form_late(storing, client, str(view.get("id", "")), launch.form_title)
            requests_first.later(late, urgent=True)
            return
        if isinstance(answer, dict):
            await ack(response_action="errors", errors=answer)
            return
        await ack(response_action="update", view=_closing(answer, launch.form_title))

    return form_submitted


async def _store_form(
    launch: Launch[Any], form: Form, invocation: Invocation, filled: BaseModel, engine: Engine
) -> str | dict[str, str]:
    """Make and store the workflow: the confirmation, or errors by field."""
    try:
        workflow = await made(launch, invocation, filled)
        await engine.new_workflow(workflow)
    except (ValidationError, UsageError) as e:
        return form.errors_of(e)
    except Exception:
        log.exception("could not start %s", launch.name)
        return NOT_STARTED
    return launch.confirmation(workflow)


def _closing(text: str, title: str = "Request") -> dict[str, Any]:
    """The modal a submission turns into: what happened, and a Done button."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [section(text)],
    }


async def _report_form_late(
    storing: asyncio.Future[str | dict[str, str]],
    client: AsyncWebClient,
    view_id: str,
    title: str,
) -> None:
    """The database was slow: the form, showing "Recording…", turns into what happened."""
    answer = await storing
    if isinstance(answer, dict):  # refused late: say why, field by field
        answer = "The request was not started:\n" + "\n".join(
            f"• {message}" for message in answer.values()
        )
    try:
        await client.views_update(view_id=view_id, view=_closing(answer, title))
    except SlackApiError as e:  # closed meanwhile: nothing left to show it in
        log.info("could not show the late answer of a form: %s", e.response.get("error"))


async def _report_late(replying: asyncio.Future[str], respond: AsyncRespond) -> None:
    """The database was slow: tell the person once the workflow is stored (or not)."""
    await respond(response_type="ephemeral", replace_original=False, text=await replying)
