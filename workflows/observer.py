"""What the engine reports as it works, for metrics and logs, without depending on any
metrics library: the bot plugs in Prometheus (`bot.metrics`); the default reports nothing.

`current_workflow` names the workflow being executed or answered, so every log line written
meanwhile (the engine's, a step's, the Slack client's) can carry its id.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Protocol

current_workflow: ContextVar[str] = ContextVar("current_workflow", default="")


class Observer(Protocol):
    def step(self, workflow_type: str, seconds: float, ok: bool) -> None: ...

    def callback(self, workflow_type: str, seconds: float, ok: bool) -> None: ...

    def retry(self, workflow_type: str) -> None: ...


class NullObserver:
    def step(self, workflow_type: str, seconds: float, ok: bool) -> None:
        pass

    def callback(self, workflow_type: str, seconds: float, ok: bool) -> None:
        pass

    def retry(self, workflow_type: str) -> None:
        pass


class WorkflowIdFilter(logging.Filter):
    """Adds `workflow_id` to every record: from `extra`, else from `current_workflow`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "workflow_id", ""):
            record.workflow_id = current_workflow.get()
        return True
