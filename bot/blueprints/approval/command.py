"""`/approval`: parsing the command into an `ApprovalRequest`. Pure functions, no Slack calls.

    /approval <@U1> [<@U2> ...] [--timeout DURATION] [--quorum N] <what needs approving>

Slack delivers mentions escaped (`<@U123|alice>`) when the command has escaping on. The
request's rules (quorum, self-approval, length) are the model's, not the parser's: the bot
shows the model's refusal in its own words (bot.commands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from bot.blueprint import Invocation, UsageError
from bot.blueprints.approval.workflow import ApprovalRequest
from bot.durations import format_duration, parse_duration
from bot.messages import mentions

DEFAULT_TIMEOUT = timedelta(hours=24)

DESCRIPTION = "Ask people to approve something"
USAGE_HINT = "@alice @bob [--quorum 2] [--timeout 2h] Deploy api v2.3 to production"
USAGE = (
    "*Usage:* `/approval @approver [@approver ...] [--timeout DURATION] [--quorum N] "
    "what needs approving`\n"
    "• `--timeout` like `90s`, `10m`, `2h`, `1d` or `1h30m` (default 24h)\n"
    "• `--quorum` how many approvers must approve (default 1); one Deny ends the request\n"
    "Example: `/approval @alice @bob --quorum 2 --timeout 2h Deploy api v2.3 to production`"
)

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class ApprovalCommand:
    approvers: tuple[str, ...]
    text: str
    timeout: timedelta = DEFAULT_TIMEOUT
    quorum: int = 1


def parse_approval(text: str) -> ApprovalCommand:
    """Parse the command text (`help` is answered before it gets here).

    Mentions and options come first; the description is the rest of the text exactly as
    typed, line breaks included."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        raise UsageError("the command is empty: name at least one approver and what to approve")
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


def start_request(command: Invocation) -> ApprovalRequest:
    """The request `/approval` asks for (the model refuses what breaks its rules)."""
    parsed = parse_approval(command.text)
    return ApprovalRequest(
        requester=command.user,
        approvers=list(parsed.approvers),
        text=parsed.text,
        quorum=parsed.quorum,
        timeout=parsed.timeout,
        channel=command.channel,
    )


def started(request: ApprovalRequest) -> str:
    """What the requester reads once the request is stored."""
    needed = "any one of" if request.quorum == 1 else f"{request.quorum} of"
    return (
        f"Approval request sent to {mentions(request.approvers)}; it needs {needed} them "
        f"within {format_duration(request.timeout)}. I will message you the outcome."
    )
