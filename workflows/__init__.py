"""Durable workflows checkpointed to SQL: a Python port of gorchestrate.

Importing the package stays light: the statements, the interfaces and the errors load with
it; the rest loads on first use of its name (PEP 562), above all the engine, which brings
SQLAlchemy, SQLModel and Alembic (seconds of imports). A module that only builds
statements, or a command line that only prints its help, does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workflows.errors import (
    CallbackError,
    CallbackRejected,
    CorruptWorkflow,
    DatabaseUnavailable,
    DefinitionError,
    NoManager,
    RetryLater,
    StaleCallback,
    StatementNotFound,
    StepFailed,
    UnknownWorkflowType,
    WorkflowError,
    WorkflowExists,
    WorkflowFinished,
    WorkflowNotFound,
)
from workflows.statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    Return,
    S,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from workflows.types import DB, CallbackManager, CallbackRequest, Clock, Handler, Resumer

if TYPE_CHECKING:
    from workflows.engine import Engine, WorkflowInfo
    from workflows.state import State, Status
    from workflows.workflow import Summary, Workflow

_LAZY = {
    "Engine": "workflows.engine",
    "WorkflowInfo": "workflows.engine",
    "State": "workflows.state",
    "Status": "workflows.state",
    "Summary": "workflows.workflow",
    "Workflow": "workflows.workflow",
}

__all__ = [
    "DB",
    "Break",
    "CallbackError",
    "CallbackManager",
    "CallbackRejected",
    "CallbackRequest",
    "Case",
    "Clock",
    "Continue",
    "CorruptWorkflow",
    "DatabaseUnavailable",
    "Default",
    "DefinitionError",
    "Engine",
    "For",
    "Go",
    "Handler",
    "If",
    "NoManager",
    "On",
    "Resumer",
    "RetryLater",
    "Return",
    "S",
    "StaleCallback",
    "State",
    "StatementNotFound",
    "Status",
    "Step",
    "StepFailed",
    "Summary",
    "Switch",
    "UnknownWorkflowType",
    "Wait",
    "WaitFor",
    "Workflow",
    "WorkflowError",
    "WorkflowExists",
    "WorkflowFinished",
    "WorkflowInfo",
    "WorkflowNotFound",
]


def __getattr__(name: str) -> Any:
    """Load the heavy public names on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
