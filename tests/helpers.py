"""Small wait conditions and helpers shared by the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workflows import CallbackRequest, Engine
from workflows.state import ThreadStatus


@dataclass
class Manual:
    """A handler answered by the test through `engine.on_callback`."""

    fn: Callable[[Any], Any] | None = None
    type: ClassVar[str] = "manual"

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        if self.fn is not None:
            self.fn(input)
        return input


@dataclass
class ManualManager:
    """Records setups and teardowns; teardown checks it gets setup's data back."""

    fail_setups: int = 0
    fail_teardowns: int = 0
    setups: list[tuple[str, int]] = field(default_factory=list)
    teardowns: list[tuple[str, int, bool]] = field(default_factory=list)

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        if self.fail_setups:
            self.fail_setups -= 1
            raise ConnectionError("setup failed")
        self.setups.append((request.name, request.pc))
        return f'{{"posted": "{request.name}:{request.pc}"}}'

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if self.fail_teardowns:
            self.fail_teardowns -= 1
            raise ConnectionError("teardown failed")
        assert request.setup_data == f'{{"posted": "{request.name}:{request.pc}"}}', request
        self.teardowns.append((request.name, request.pc, handled))


async def waiting_request(
    engine: Engine, workflow_id: str, event: str, thread_id: str = "main"
) -> CallbackRequest:
    """The request for `event` of the thread's current wait, as setup received it."""
    record = await engine.db.get(workflow_id)
    thread = record.state.thread(thread_id)
    assert thread is not None, f"no thread {thread_id}"
    assert thread.status == ThreadStatus.BLOCKED, thread
    for e in thread.events:
        if e.name == event:
            return CallbackRequest(
                workflow_id=workflow_id,
                thread_id=thread_id,
                name=event,
                pc=e.pc,
                setup_data=e.setup_data,
                waiting_since=e.since,
            )
    raise AssertionError(f"thread {thread_id} does not wait for {event}: {thread.events}")
