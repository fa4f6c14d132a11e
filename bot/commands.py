"""Slash commands: from Slack, through a blueprint's `Launch`, to a stored workflow.

Every launch gets the same treatment: `help` (or `-h`, `--help`) answers with its help;
a `UsageError` or the model's own refusal (`pydantic.ValidationError`) gets the problem
above the help, ephemerally, and starts nothing; a good command is stored before it is
acknowledged, so once the person reads "started" nothing can lose it. A command shared by
several launches picks one by its first word (its subcommand).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.blueprint import Invocation, Launch, UsageError
from bot.priority import RequestsFirst
from workflows import Engine

log = logging.getLogger("bot.commands")

ACK_DEADLINE = 2.0  # seconds to store the workflow before acknowledging anyway
HELP = ("help", "-h", "--help")
NOT_STARTED = ":x: Your request could not be started. Please try again."

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


async def started(launch: Launch[Any], invocation: Invocation, engine: Engine) -> str:
    """Make the workflow and store it; what to tell the person either way."""
    try:
        workflow = launch.start(invocation)
        if inspect.isawaitable(workflow):
            workflow = await workflow
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
) -> None:
    """One Bolt listener per slash command, for all its launches."""
    for command, launches in commands.items():
        app.command(command)(_listener(command, launches, engine, requests_first))


def _listener(
    name: str, launches: list[Launch[Any]], engine: Engine, requests_first: RequestsFirst
) -> Any:
    async def command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
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
        )
        # Stored before acknowledging: an insert is milliseconds, and the deadline keeps
        # the answer within Slack's 3 s when the database is slow.
        replying = asyncio.ensure_future(started(launch, invocation, engine))
        try:
            text = await asyncio.wait_for(asyncio.shield(replying), ACK_DEADLINE)
        except TimeoutError:
            await ack(response_type="ephemeral", text="Recording your request…")
            requests_first.later(_report_late(replying, respond), urgent=True)
            return
        await ack(response_type="ephemeral", text=text)

    command.__name__ = f"command_{name.lstrip('/').replace('-', '_')}"
    return command


async def _report_late(replying: asyncio.Future[str], respond: AsyncRespond) -> None:
    """The database was slow: tell the person once the workflow is stored (or not)."""
    await respond(response_type="ephemeral", replace_original=False, text=await replying)
