"""Durations as people type them in Slack and on the command line: `90s`, `10m`, `2h`, `1d`,
`1h30m`. One parser, so a command, a form and the operator CLI read them alike."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.blueprint import UsageError

MAX_DURATION = timedelta(days=365)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: str, what: str = "the timeout") -> timedelta:
    """A positive duration of at most a year, or `UsageError` naming the problem (and
    `what` the duration is for)."""
    match = _DURATION.match(value.strip().lower())
    if not value.strip() or match is None or not any(match.groups()):
        raise UsageError(f"`{value}` is not a duration: use forms like 90s, 10m, 2h, 1d, 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise UsageError(f"{what} must be longer than zero")
    if duration > MAX_DURATION:
        raise UsageError(f"{what} can be at most 365 days")
    return duration


def format_duration(duration: timedelta) -> str:
    """The shortest form `parse_duration` reads back: `1h30m`."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
