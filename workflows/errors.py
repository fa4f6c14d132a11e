"""The engine's exceptions: one root, precise subclasses.

Each docstring is the default message, so `raise StaleCallback()` already says what happened.
"""

from __future__ import annotations

from datetime import timedelta


class WorkflowError(Exception):
    """A workflow operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class DefinitionError(WorkflowError):
    """The workflow definition is invalid."""


class UnknownWorkflowType(WorkflowError):
    """No workflow of this type is registered with the engine."""


class WorkflowNotFound(WorkflowError):
    """No workflow has this id."""


class WorkflowExists(WorkflowError):
    """A workflow with this id already exists."""


class CorruptWorkflow(WorkflowError):
    """The stored workflow no longer validates against its model."""


class DatabaseUnavailable(WorkflowError):
    """The database cannot be reached or opened."""


class StatementNotFound(WorkflowError):
    """The statement a thread was at no longer exists in the definition."""


class CallbackError(WorkflowError):
    """The callback cannot be applied."""


class StaleCallback(CallbackError):
    """The callback is stale: the wait it answers is over (already handled, timed out or
    replaced), so it was not applied."""


class WorkflowFinished(CallbackError):
    """The workflow has already ended, so nothing can change it."""


class CallbackRejected(CallbackError):
    """The handler refused the callback; the workflow is unchanged."""


class NoManager(WorkflowError):
    """No callback manager is registered for this handler type."""


class StepFailed(WorkflowError):
    """Raised by a step whose failure no retry can mend (a request the other side refuses
    as malformed, say): the workflow fails at once, without the retries an ordinary
    exception gets, and its `on_failure` is told."""


class RetryLater(WorkflowError):
    """Not now: the work (a step or a teardown, say, waiting for a rate budget) is to be
    tried again after `delay`. Not a failure: nothing is counted against it and no error
    is recorded, and nothing holds a place in the process while it waits (the due time is
    stored)."""

    def __init__(self, delay: timedelta, message: str | None = None) -> None:
        super().__init__(message or f"retry in {delay.total_seconds():.3f}s")
        self.delay = delay
