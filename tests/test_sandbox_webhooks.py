"""The sandbox's built-in webhook receiver through real HTTP: what it records and answers,
its fail switch, the page's state and live events, and the engine's webhook step
delivering to it (retried through the switch, delivered once)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.routines.webhook import IDEMPOTENCY_KEY, SIGNATURE, TIMESTAMP, sign, verify
from bot.sandbox.page import Sandbox, running_sandbox
from bot.sandbox.receiver import KEPT
from tests.processes import poll
from tests.sandbox_blueprint import BLUEPRINTS


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        port=0,
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}",
        sweep_interval=0.1,
        blueprints=BLUEPRINTS,
    ) as s:
        yield s


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield session


def signed(secret: str, payload: Any, key: str) -> tuple[bytes, dict[str, str]]:
    """A request as the webhook step sends it."""
    body = json.dumps(payload, sort_keys=True).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP: str(stamp),
        SIGNATURE: sign(secret, stamp, body),
        IDEMPOTENCY_KEY: key,
    }
    return body, headers


async def deliver(
    http: aiohttp.ClientSession, name: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.post(f"/sandbox/webhooks/{name}", data=body, headers=headers) as response:
        return response.status, await response.json()


async def state(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/sandbox/api/state") as response:
        assert response.status == 200
        found: dict[str, Any] = await response.json()
        return found


async def fail_next(http: aiohttp.ClientSession, count: object) -> tuple[int, Any]:
    async with http.post("/sandbox/api/webhooks/fail", json={"count": count}) as response:
        return response.status, await response.json()


async def test_a_signed_request_is_recorded_and_accepted(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    secret = sandbox.service.settings.webhook_secret
    body, headers = signed(secret, {"service": "api", "version": "2.3"}, "wf1:tell deploys")
    assert await deliver(http, "deploys", body, headers) == (200, {"ok": True})
    (shown,) = (await state(http))["webhooks"]
    assert shown["name"] == "deploys"
    assert shown["body"] == {"service": "api", "version": "2.3"}
    assert shown["idempotency_key"] == "wf1:tell deploys"
    assert shown["timestamp"] == headers[TIMESTAMP]
    assert shown["signed"] is True
    assert (shown["attempt"], shown["duplicate"], shown["status"]) == (1, False, 200)
    assert shown["answer"] == {"ok": True}
    assert shown["received_at"].endswith("+00:00")


async def test_a_bad_signature_is_refused_and_recorded(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body, headers = signed("not the sandbox's secret", {"n": 1}, "wf2:hook")
    assert (await deliver(http, "deploys", body, headers))[0] == 401
    unsigned = {"Content-Type": "application/json", IDEMPOTENCY_KEY: "wf2:hook"}
    assert (await deliver(http, "deploys", body, unsigned))[0] == 401
    good, headers = signed(sandbox.service.settings.webhook_secret, {"n": 1}, "wf2:hook")
    tampered = good.replace(b"1", b"2")
    assert (await deliver(http, "deploys", tampered, headers))[0] == 401
    shown = (await state(http))["webhooks"]
    assert [(d["status"], d["signed"], d["attempt"]) for d in shown] == [
        (401, False, 3),
        (401, False, 2),
        (401, False, 1),
    ]
    assert not any(d["duplicate"] for d in shown)  # refused: nothing was delivered


async def test_attempts_count_per_key_and_a_repeat_is_a_duplicate(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    secret = sandbox.service.settings.webhook_secret
    for key in ("wf3:a", "wf3:a", "wf3:b", "wf3:a"):
        body, headers = signed(secret, {"key": key}, key)
        assert await deliver(http, "audit", body, headers) == (200, {"ok": True})
    shown = list(reversed((await state(http))["webhooks"]))  # oldest first
    assert [(d["idempotency_key"], d["attempt"], d["duplicate"]) for d in shown] == [
        ("wf3:a", 1, False),
        ("wf3:a", 2, True),
        ("wf3:b", 1, False),
        ("wf3:a", 3, True),
    ]
    # Exactly once, visibly: one delivery per key is not a duplicate.
    assert [d["idempotency_key"] for d in shown if not d["duplicate"]] == ["wf3:a", "wf3:b"]


async def test_the_fail_switch_answers_500_n_times_then_200(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert await fail_next(http, 2) == (200, {"ok": True, "failing": 2})
    assert (await state(http))["webhooks_failing"] == 2
    secret = sandbox.service.settings.webhook_secret
    statuses = []
    for _ in range(3):
        body, headers = signed(secret, {"n": 1}, "wf4:hook")
        statuses.append((await deliver(http, "deploys", body, headers))[0])
    assert statuses == [500, 500, 200]
    shown = (await state(http))["webhooks"]
    assert [(d["status"], d["attempt"], d["duplicate"]) for d in shown] == [
        (200, 3, False),  # the first delivered: failed attempts delivered nothing
        (500, 2, False),
        (500, 1, False),
    ]
    assert (await state(http))["webhooks_failing"] == 0
    for wrong in (-1, "3", None, True, 1.5):
        status, answer = await fail_next(http, wrong)
        assert (status, answer["ok"]) == (400, False), wrong


async def test_only_the_newest_requests_are_kept(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    secret = sandbox.service.settings.webhook_secret
    for n in range(KEPT + 5):
        body, headers = signed(secret, {"n": n}, f"wf5:{n}")
        assert (await deliver(http, "many", body, headers))[0] == 200
    shown = (await state(http))["webhooks"]
    assert len(shown) == KEPT
    assert shown[0]["body"] == {"n": KEPT + 4}
    assert shown[-1]["body"] == {"n": 5}


async def test_a_body_that_is_not_json_is_refused(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    secret = sandbox.service.settings.webhook_secret
    stamp = int(time.time())
    body = b"service=api"
    headers = {TIMESTAMP: str(stamp), SIGNATURE: sign(secret, stamp, body)}
    status, answer = await deliver(http, "form", body, headers)
    assert (status, answer["ok"]) == (400, False)
    (shown,) = (await state(http))["webhooks"]
    assert (shown["body"], shown["signed"], shown["idempotency_key"]) == ("service=api", True, "")


async def test_a_delivery_wakes_the_pages_event_stream(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.get("/sandbox/api/events") as events:
        assert await events.content.readline() == b'data: {"type": "changed"}\n'
        assert await events.content.readline() == b"\n"
        body, headers = signed(sandbox.service.settings.webhook_secret, {}, "wf6:hook")
        assert (await deliver(http, "deploys", body, headers))[0] == 200
        # Nothing else changes meanwhile (no workflow, no message): this event is the
        # receiver's.
        told = await asyncio.wait_for(events.content.readline(), 5)
        assert told == b'data: {"type": "changed"}\n'


async def test_the_sandbox_signs_and_receives_its_own_webhooks(tmp_path: Path) -> None:
    async with running_sandbox(
        port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", blueprints=BLUEPRINTS
    ) as sandbox:
        settings = sandbox.service.settings
        assert settings.webhook_receiver == f"{sandbox.url}/sandbox/webhooks/"
        assert len(settings.webhook_secret) == 32  # random: nothing was configured
        assert sandbox.receiver.secret == settings.webhook_secret


async def test_a_configured_webhook_secret_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "the-teams-own-secret")
    async with running_sandbox(
        port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", blueprints=BLUEPRINTS
    ) as sandbox:
        assert sandbox.service.settings.webhook_secret == "the-teams-own-secret"
        body, headers = signed("the-teams-own-secret", {}, "wf7:hook")
        assert verify(sandbox.receiver.secret, headers, body)


async def test_a_webhook_step_is_retried_through_the_switch_and_delivered_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    """`/ship api` runs a workflow whose webhook step goes to `WEBHOOK_RECEIVER`: two
    answers of 500 make the engine retry it, the third delivers it, and nothing repeats."""
    assert (await fail_next(http, 2))[0] == 200
    await sandbox.slack.slash_command("U0RITA", "api", command="/ship")
    store = sandbox.service.engine.db

    async def finished() -> bool:
        records = await store.list_workflows()
        return len(records) == 1 and records[0].status == "finished"

    await poll(finished, 20, "the webhook was not delivered")
    (record,) = await store.list_workflows()
    shown = list(reversed((await state(http))["webhooks"]))
    assert [(d["status"], d["attempt"], d["duplicate"], d["signed"]) for d in shown] == [
        (500, 1, False, True),
        (500, 2, False, True),
        (200, 3, False, True),
    ]
    assert {d["idempotency_key"] for d in shown} == {f"{record.id}:tell deploys"}
    assert {d["name"] for d in shown} == {"deploys"}
    assert shown[-1]["body"] == {"by": "U0RITA", "service": "api"}
