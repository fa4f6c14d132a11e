"""The approval workflow on its own, with the testing kit (fake clock, drain resumer) and a
recording notifier and manager in place of Slack."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.blueprints.approval.workflow import ApprovalRequest
from callbacks.user_action import WaitForUserAction
from tests.conftest import KitFactory
from tests.helpers import ManualManager, waiting_request
from workflows import CallbackRejected, DefinitionError, WorkflowFinished


class RecordingNotifier:
    def __init__(self, failures: int = 0) -> None:
        self.told: list[tuple[str, str]] = []
        self.failures = failures

    async def tell_requester(
        self, request: ApprovalRequest, outcome: str, detail: str = "", by: str = ""
    ) -> None:
        if self.failures and outcome != "failed":
            self.failures -= 1
            raise ConnectionError("slack is down")
        self.told.append((outcome, detail))


async def kit_for(make_kit: KitFactory, notifier: RecordingNotifier, **options: object):  # type: ignore[no-untyped-def]
    from callbacks import default_callbacks

    return await make_kit(
        ApprovalRequest,
        services=[notifier],
        callbacks={**default_callbacks(), WaitForUserAction.type: ManualManager()},
        **options,
    )


def decision(user: str, what: str = "approve", reason: str = "") -> dict[str, str]:
    return {"user": user, "decision": what, "reason": reason}


async def test_quorum_then_everything_is_torn_down(make_kit: KitFactory) -> None:
    notifier = RecordingNotifier()
    kit = await kit_for(make_kit, notifier)
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["A", "B", "C"], quorum=2, text="Deploy")
    )
    await kit.drain()
    assert await kit.waiting(wid) == [
        "action A",
        "action B",
        "action C",
        "timeout",
        "extend",
        "nudge",
    ]
    await kit.answer(wid, "action A", decision("A"))
    await kit.drain()
    assert notifier.told == []
    await kit.answer(wid, "action B", decision("B"))
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.status == "finished"
    assert info.output == {
        "outcome": "approved",
        "approved_by": ["A", "B"],
        "denied_by": "",
        "reason": "",
    }
    assert notifier.told == [("approved", "")]
    manager: ManualManager = kit.engine.callbacks[WaitForUserAction.type]  # type: ignore[assignment]
    assert sorted((n, h) for n, _, h in manager.teardowns) == [
        ("action A", True),
        ("action B", True),
        ("action C", False),
    ]
    assert await kit.engine.db.due_timers(kit.clock.now() + timedelta(days=2), 10) == []


async def test_one_deny_ends_it_and_needs_a_reason(make_kit: KitFactory) -> None:
    notifier = RecordingNotifier()
    kit = await kit_for(make_kit, notifier)
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["A", "B"], quorum=2, text="Deploy")
    )
    await kit.drain()
    with pytest.raises(CallbackRejected, match="reason is required"):
        await kit.answer(wid, "action B", decision("B", "deny"))
    with pytest.raises(CallbackRejected, match="not an approver"):
        await kit.answer(wid, "action B", decision("E", "deny", "no"))
    await kit.answer(wid, "action B", decision("B", "deny", "not today"))
    await kit.drain()
    info = await kit.engine.get(wid)
    assert info.output["outcome"] == "denied"
    assert (info.output["denied_by"], info.output["reason"]) == ("B", "not today")
    assert notifier.told == [("denied", "")]
    assert (await kit.engine.db.get(wid)).state.orphans == []  # A's message deleted too


async def test_times_out_after_the_timeout(make_kit: KitFactory) -> None:
    notifier = RecordingNotifier()
    kit = await kit_for(make_kit, notifier)
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["A"], text="Deploy", timeout=timedelta(hours=2))
    )
    await kit.drain()
    a = await waiting_request(kit.engine, wid, "action A", "ask-A")
    await kit.advance(timedelta(hours=2))
    assert (await kit.engine.get(wid)).output["outcome"] == "timed out"
    assert notifier.told == [("timed out", "")]
    with pytest.raises(WorkflowFinished, match="finished"):
        await kit.engine.on_callback(a, decision("A"))


async def test_requester_cannot_decide_their_own_request(make_kit: KitFactory) -> None:
    kit = await kit_for(make_kit, RecordingNotifier())
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["R", "A"], text="Deploy")
    )
    await kit.drain()
    with pytest.raises(CallbackRejected, match="your own request"):
        await kit.answer(wid, "action R", decision("R"))
    assert (await kit.engine.get(wid)).status == "waiting"


async def test_requester_is_told_when_the_request_fails(make_kit: KitFactory) -> None:
    notifier = RecordingNotifier(failures=100)
    kit = await kit_for(make_kit, notifier, max_attempts=3)
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["A"], text="Deploy")
    )
    await kit.drain()
    a = await waiting_request(kit.engine, wid, "action A", "ask-A")
    await kit.engine.on_callback(a, decision("A"))
    for _ in range(3):
        await kit.advance(kit.engine.retry_max)
    info = await kit.engine.get(wid)
    assert info.status == "failed"
    assert notifier.told == [("failed", info.error)]
    assert "ConnectionError: slack is down" in (info.error or "")
    with pytest.raises(WorkflowFinished, match="failed"):
        await kit.engine.on_callback(a, decision("A"))


async def test_a_cancel_tells_the_requester_once_even_when_slack_fails(
    make_kit: KitFactory,
) -> None:
    notifier = RecordingNotifier(failures=2)
    kit = await kit_for(make_kit, notifier)
    wid = await kit.engine.new_workflow(
        ApprovalRequest(requester="R", approvers=["A", "B"], text="Deploy")
    )
    await kit.drain()
    await kit.engine.cancel(wid, "wrong environment", actor="cli:ops")
    await kit.drain()
    assert notifier.told == []  # Slack failed: retried with backoff
    for _ in range(2):
        await kit.advance(kit.engine.retry_max)
    assert notifier.told == [("cancelled", "wrong environment")]
    record = await kit.engine.db.get(wid)
    assert (record.status, record.state.orphans) == ("cancelled", [])
    manager: ManualManager = kit.engine.callbacks[WaitForUserAction.type]  # type: ignore[assignment]
    assert sorted(n for n, _, _ in manager.teardowns) == ["action A", "action B"]


async def test_every_approvers_wait_is_checked_before_the_request_is_stored(
    make_kit: KitFactory,
) -> None:
    from callbacks import default_callbacks

    kit = await make_kit(ApprovalRequest, callbacks=default_callbacks())  # no Slack manager
    request = ApprovalRequest(requester="R", approvers=["A", "B"], text="Deploy")
    with pytest.raises(
        DefinitionError,
        match=f"event 'action A': no callback manager for handler type '{WaitForUserAction.type}'",
    ):
        await kit.engine.new_workflow(request)
    assert await kit.engine.db.list_workflows() == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"approvers": []}, "name at least one approver"),
        ({"approvers": ["A"], "quorum": 0}, "the quorum must be at least 1"),
        ({"approvers": ["A"], "quorum": 2}, "the quorum (2) is more than the 1 approver named"),
        ({"approvers": ["R"]}, "you cannot approve your own request"),
        ({"approvers": ["A", "A"]}, "each approver can be named only once"),
        ({"approvers": ["A"], "text": "  "}, "say what needs approving"),
    ],
)
async def test_the_request_refuses_what_can_never_be_approved(
    make_kit: KitFactory, fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        ApprovalRequest.model_validate({"requester": "R", "text": "Deploy", **fields})
    ok = ApprovalRequest(requester="R", approvers=["R"], text="Deploy", allow_self=True)
    assert ok.summary().people == {"R": "waiting"}
