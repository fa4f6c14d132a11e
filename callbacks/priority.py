"""How urgent the work in progress is, for whatever spends a shared budget on it.

A person waits for some calls (an approver's request, the outcome, a confirmation) and
for none of others (deleting a settled request's messages, refreshing, reminding). Code
doing the latter marks it with `background()`; the bot's Slack rate limiter
(bot.ratelimit) serves urgent calls first. A context variable, so it follows the work
through awaits without being passed along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

URGENT = 0
BACKGROUND = 1

_priority: ContextVar[int] = ContextVar("work_priority", default=URGENT)


@contextlib.contextmanager
def background() -> Iterator[None]:
    """The calls made inside wait behind urgent ones."""
    token = _priority.set(BACKGROUND)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> int:
    return _priority.get()
