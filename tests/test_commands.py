"""Parsing durations and `/approval` text: pure functions (what the bot shows is tested
through the app)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.blueprint import UsageError
from bot.blueprints.approval.command import ApprovalCommand, parse_approval
from bot.durations import format_duration, parse_duration


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


def test_the_description_keeps_its_line_breaks() -> None:
    parsed = parse_approval("<@U1>  --timeout 1h Deploy api\n\n- step one\n  - nested\n")
    assert parsed is not None
    assert parsed.text == "Deploy api\n\n- step one\n  - nested"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("   ", "the command is empty"),
        ("Deploy", "name at least one approver"),
        ("<@U1>", "say what needs approving"),
        ("<@U1> --quorum", "`--quorum` needs a value"),
        ("<@U1> --quorum 0 x", "must be a whole number of at least 1"),
        ("<@U1> --quorum two x", "must be a whole number of at least 1"),
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
