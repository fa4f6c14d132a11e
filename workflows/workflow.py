"""The `Workflow` base class: a Pydantic model whose fields are the durable data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from workflows.errors import WorkflowError
from workflows.statements import Stmt
from workflows.types import Clock

S = TypeVar("S")


@dataclass(frozen=True)
class Summary:
    """What a person wants to know about a workflow, in their words, not the engine's:
    shown first by the operator CLI and the sandbox page (engine positions stay behind
    `--json` / a detail toggle)."""

    title: str
    """What it is about, e.g. the request text (may span lines)."""
    started_by: str = ""
    """Who started it (a Slack user id for the bot's workflows)."""
    people: dict[str, str] = field(default_factory=dict)
    """Everyone with a part in it and where they stand ("approved", "waiting", ...)."""
    outcome: str = ""
    """How it ended in the workflow's own terms ("approved", "timed out"); empty while
    it runs. A cancelled or failed workflow reads as such whatever this says."""


class Workflow(BaseModel):
    """Subclass it, declare the data as fields and return the statements from `definition()`.

    `definition()` is called again whenever execution resumes, after every step, so it must
    be cheap and free of side effects: build the tree, do the work in steps.
    """

    model_config = ConfigDict(validate_assignment=False, arbitrary_types_allowed=False)

    workflow_type: ClassVar[str] = ""
    """Stored type name; defaults to the class name. Keep it stable across renames."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "workflow_type" not in cls.__dict__:
            cls.workflow_type = cls.__name__

    _services: Mapping[type, object] = PrivateAttr(default_factory=dict)
    _workflow_id: str = PrivateAttr(default="")
    _clock: Clock | None = PrivateAttr(default=None)

    def now(self) -> datetime:
        """The time (UTC) by the engine's clock, so the data's timestamps agree with the
        engine's own (a test's fake clock included); the system's outside an engine."""
        return datetime.now(UTC) if self._clock is None else self._clock.now()

    @property
    def workflow_id(self) -> str:
        """This workflow's id (set by the engine): a natural idempotency key for steps
        whose effects must not be repeated when a step runs again."""
        return self._workflow_id

    def service(self, kind: type[S]) -> S:
        """The object of type `kind` given to the engine as a service (a Slack client, a
        notifier...): how steps reach the outside world, since the data is only JSON."""
        for key, value in self._services.items():
            if issubclass(key, kind):
                return value  # type: ignore[return-value]
        raise WorkflowError(f"no service of type {kind.__name__} was given to the engine")

    async def on_failure(self, error: str) -> None:
        """Called once, best effort, after the engine marked the workflow failed (a step
        failed too often, or the code no longer matches it). Override to tell someone."""

    async def on_cancel(self, reason: str, actor: str) -> None:
        """Called after the workflow was cancelled (by `actor`, for `reason`), once its
        cancel is committed: at least once, in a process that runs workflows, retried with
        backoff until it returns. Override to tell someone; keep it idempotent."""

    def summary(self) -> Summary:
        """Override to say what this workflow is about (the default names its type)."""
        return Summary(title=self.workflow_type)

    def definition(self) -> Stmt:
        raise NotImplementedError(f"{type(self).__name__} must define definition()")
