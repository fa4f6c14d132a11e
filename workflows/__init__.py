"""Durable workflows checkpointed to SQL: a Python port of gorchestrate."""

from __future__ import annotations

from workflows.engine import Engine, WorkflowInfo
from workflows.errors import (
    CallbackError,
    CallbackRejected,
    CorruptWorkflow,
    DefinitionError,
    NoManager,
    StaleCallback,
    StatementNotFound,
    UnknownWorkflowType,
    WorkflowError,
    WorkflowExists,
    WorkflowFinished,
    WorkflowNotFound,
)
from workflows.state import State, Status
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
from workflows.workflow import Summary, Workflow

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
    "Return",
    "S",
    "StaleCallback",
    "State",
    "StatementNotFound",
    "Status",
    "Step",
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
