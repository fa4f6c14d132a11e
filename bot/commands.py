"""Parsing `/approval` commands: pure functions, no Slack calls.

    /approval <@U1> [<@U2> ...] [--timeout DURATION] [--quorum N] <what needs approving>

Slack delivers mentions escaped (`<@U123|alice>`) when the command has escaping on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.messages import started
from bot.priority import RequestsFirst
from workflows import Engine
from workflows.approval import ApprovalRequest

log = logging.getLogger("bot.commands")

DEFAULT_TIMEOUT = timedelta(hours=24)
ACK_DEADLINE = 2.0  # seconds to store the request before acknowledging anyway
MAX_TIMEOUT = timedelta(days=365)

USAGE = (
    "*Usage:* `/approval @approver [@approver ...] [--timeout DURATION] [--quorum N] "
    "what needs approving`\n"
    "• `--timeout` like `90s`, `10m`, `2h`, `1d` or `1h30m` (default 24h)\n"
    "• `--quorum` how many approvers must approve (default 1); one Deny ends the request\n"
    "Example: `/approval @alice @bob --quorum 2 --timeout 2h Deploy api v2.3 to production`"
)

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_TOKEN = re.compile(r"\S+")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class UsageError(ValueError):
    """The command is malformed; the message names the problem."""


@dataclass(frozen=True)
class ApprovalCommand:
    approvers: tuple[str, ...]
    text: str
    timeout: timedelta = DEFAULT_TIMEOUT
    quorum: int = 1


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value.strip().lower())
    if not value.strip() or match is None or not any(match.groups()):
        raise UsageError(f"`{value}` is not a duration: use forms like 90s, 10m, 2h, 1d, 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise UsageError("the timeout must be longer than zero")
    if duration > MAX_TIMEOUT:
        raise UsageError("the timeout can be at most 365 days")
    return duration


def parse_approval(text: str) -> ApprovalCommand | None:
    """Parse the command text; None means the user asked for help.

    Mentions and options come first; the description is the rest of the text exactly as
    typed, line breaks included. The request's rules (quorum, self-approval, length) are
    the model's (`ApprovalRequest`), not the parser's."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        raise UsageError("the command is empty: name at least one approver and what to approve")
    if tokens[0].group().lower() in ("help", "-h", "--help"):
        return None
    approvers: list[str] = []
    timeout = DEFAULT_TIMEOUT
    quorum = 1
    description = ""
    i = 0
    while i < len(tokens):
        word = tokens[i].group()
        mention = _MENTION.match(word)
        if mention:
            if mention.group(1) not in approvers:
                approvers.append(mention.group(1))
        elif word.startswith("@"):
            raise UsageError(
                f"`{word}` is not a Slack user mention: pick the person from the @ menu"
            )
        elif word in ("--timeout", "--quorum"):
            if i + 1 >= len(tokens):
                raise UsageError(f"`{word}` needs a value")
            value = tokens[i + 1].group()
            if word == "--timeout":
                timeout = parse_duration(value)
            else:
                if not value.isdigit() or int(value) < 1:
                    raise UsageError(f"`--quorum {value}` must be a whole number of at least 1")
                quorum = int(value)
            i += 1
        elif word.startswith("--"):
            raise UsageError(f"unknown option `{word}`: the options are --timeout and --quorum")
        else:  # the description begins: the rest of the text, as typed
            description = text[tokens[i].start() :].rstrip()
            break
        i += 1
    if not approvers:
        raise UsageError("name at least one approver with an @mention")
    if not description:
        raise UsageError("say what needs approving after the approvers")
    return ApprovalCommand(tuple(approvers), description, timeout, quorum)


def rule_error(error: ValidationError) -> UsageError:
    """The model's refusal, in the words it gave (pydantic prefixes "Value error, ")."""
    first = error.errors()[0]
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    return UsageError(message)


def format_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def register(app: AsyncApp, engine: Engine, requests_first: RequestsFirst) -> None:
    """`/approval`: bad input gets the usage at once; a good request is stored, then
    acknowledged."""

    @app.command("/approval")
    async def approval(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        requester = str(command.get("user_id", ""))
        try:
            parsed = parse_approval(str(command.get("text", "")))
            if parsed is None:
                await ack(response_type="ephemeral", text=USAGE)
                return
            request = ApprovalRequest(
                requester=requester,
                approvers=list(parsed.approvers),
                text=parsed.text,
                quorum=parsed.quorum,
                timeout=parsed.timeout,
                channel=str(command.get("channel_id", "")),
            )
        except ValidationError as e:
            await ack(response_type="ephemeral", text=f":warning: {rule_error(e)}\n\n{USAGE}")
            return
        except UsageError as e:
            await ack(response_type="ephemeral", text=f":warning: {e}\n\n{USAGE}")
            return
        approvers = request.approvers
        # Stored before acknowledging: once the requester reads "sent", nothing can lose
        # it. An insert is milliseconds; the deadline keeps the answer within Slack's 3 s.
        creating = asyncio.ensure_future(engine.new_workflow(request))
        try:
            await asyncio.wait_for(asyncio.shield(creating), ACK_DEADLINE)
        except TimeoutError:
            await ack(response_type="ephemeral", text="Recording your request…")
            requests_first.later(_report_late(creating, respond, approvers, parsed), urgent=True)
            return
        except Exception:
            log.exception("could not start an approval request")
            await ack(
                response_type="ephemeral",
                text=":x: Your request could not be started. Please try again.",
            )
            return
        await ack(
            response_type="ephemeral",
            text=started(approvers, parsed.quorum, format_duration(parsed.timeout)),
        )


async def _report_late(
    creating: asyncio.Future[str],
    respond: AsyncRespond,
    approvers: list[str],
    parsed: ApprovalCommand,
) -> None:
    """The database was slow: tell the requester once the request is stored (or not)."""
    try:
        await creating
    except Exception:
        log.exception("could not start an approval request")
        text = ":x: Your request could not be started. Please try again."
    else:
        text = started(approvers, parsed.quorum, format_duration(parsed.timeout))
    await respond(response_type="ephemeral", replace_original=False, text=text)
