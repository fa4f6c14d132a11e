"""Parsing `/approval` text and building Block Kit payloads: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import messages
from bot.commands import (
    ApprovalCommand,
    UsageError,
    format_duration,
    parse_approval,
    parse_duration,
)
from bot.sandbox.blockkit import check_blocks, check_view
from workflows import CallbackRequest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1H", timedelta(hours=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "soon", "1x", "h", "0s", "1.5h", "-1h", "366d", "1h 30m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_full_command() -> None:
    parsed = parse_approval(
        "<@U1|alice> <@U2> --quorum 2 --timeout 2h Deploy api v2.3 --force to production"
    )
    assert parsed == ApprovalCommand(
        ("U1", "U2"), "Deploy api v2.3 --force to production", timedelta(hours=2), 2
    )


def test_defaults_and_duplicate_mentions() -> None:
    parsed = parse_approval("<@U1|a> <@U1|a> Buy coffee")
    assert parsed == ApprovalCommand(("U1",), "Buy coffee", timedelta(hours=24), 1)


def test_help() -> None:
    assert parse_approval("help") is None
    assert parse_approval("  --help ") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("   ", "the command is empty"),
        ("Deploy", "name at least one approver"),
        ("<@U1>", "say what needs approving"),
        ("<@U1> --quorum", "`--quorum` needs a value"),
        ("<@U1> --quorum 0 x", "must be a whole number of at least 1"),
        ("<@U1> --quorum two x", "must be a whole number of at least 1"),
        ("<@U1> --quorum 3 x", "more than the 1 approver(s)"),
        ("<@U1> --timeout 0m x", "longer than zero"),
        ("<@U1> -- x", "unknown option `--`"),
        ("<@U1> --verbose x", "unknown option `--verbose`"),
        ("@bob x", "`@bob` is not a Slack user mention"),
        ("<#C123|general> x", "name at least one approver"),
    ],
)
def test_malformed(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_approval(text)
    assert problem in str(caught.value)


def test_payloads_respect_block_kit_limits() -> None:
    request = CallbackRequest(
        workflow_id="w" * 32, thread_id="ask-U123", name="action U123", pc=12345
    )
    huge = "é" * 10_000
    message = messages.approval_request(
        request,
        requester="U9",
        text=huge,
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        quorum=2,
        approvers=["U1", "U2", "U3"],
    )
    check_blocks(message["blocks"])
    assert len(message["text"]) <= messages.FALLBACK_TEXT_MAX
    value = message["blocks"][-1]["elements"][0]["value"]
    assert messages.decode_request(value) == request
    check_view(messages.deny_modal(request, "D1", huge))
    for kind in ("approved", "denied", "timed out", "failed"):
        check_blocks(
            messages.outcome(kind, text=huge, by=["U1"], reason=huge, error=huge)["blocks"]
        )
