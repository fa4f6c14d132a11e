"""Telling a workflow it was cancelled, durably.

`Engine.cancel` may run in a process that runs no workflows (the operator CLI), so the
workflow's `on_cancel` cannot be called there. The cancel leaves a teardown owed instead:
an orphaned wait event of the engine's own type, carrying the reason and who cancelled.
Whichever process runs the workflow next tears it down like any other wait (at least
once, retried with backoff until it succeeds), and that teardown calls `on_cancel`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workflows.state import EventStatus, OrphanEvent, State, WaitEvent
from workflows.types import CallbackRequest

if TYPE_CHECKING:
    from workflows.engine import Engine

EVENT_TYPE = "workflow.cancelled"
EVENT_NAME = "on_cancel"


def owe_on_cancel(state: State, reason: str, actor: str) -> None:
    """Record that `on_cancel(reason, actor)` is owed (in the cancel's own transaction)."""
    event = WaitEvent(
        name=EVENT_NAME,
        type=EVENT_TYPE,
        pc=state.pc,
        status=EventStatus.PENDING_TEARDOWN,
        setup_data=json.dumps({"reason": reason, "actor": actor}),
    )
    state.orphans.append(OrphanEvent(state.threads[0].id if state.threads else "main", event))


class OnCancel:
    """The manager of the owed event: its teardown is the workflow's `on_cancel`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        raise RuntimeError("the cancellation event is never set up")

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        what = json.loads(request.setup_data or "{}")
        workflow = await self.engine.load(request.workflow_id)
        await workflow.on_cancel(str(what.get("reason", "")), str(what.get("actor", "")))
