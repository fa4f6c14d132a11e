"""Metrics, health and structured logs of the running bot."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from bot import messages
from bot.logs import configure_logging
from bot.sandbox.slack import SlackStandin
from tests.processes import poll
from tests.slackbot import ALICE, RITA, Bot, at, running_bot
from workflows import Engine, S, Step, Workflow
from workflows.store import SQLStore
from workflows.testing.postgres import PostgresServer


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_metrics(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Measure me")
    to_alice = await bot.request_dm(ALICE)
    await bot.slack.click(ALICE, to_alice, messages.APPROVE_ACTION)
    await bot.dm(RITA, "approved")
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Still waiting")
    await bot.dm(ALICE, "Still waiting")
    page: list[str] = []

    async def settled() -> bool:
        status, text = await get(f"{bot.url}/metrics")
        assert status == 200
        page[:] = [text]
        return 'workflows{status="finished"} 1.0' in text and (
            'workflows{status="waiting"} 1.0' in text
        )

    await poll(settled, 10, "the workflows did not settle")
    text = page[0]
    assert 'workflow_step_seconds_count{outcome="ok",type="approval"}' in text
    assert 'workflow_callback_seconds_count{outcome="ok",type="approval"} 1.0' in text
    assert "workflow_resumer_lag_seconds 0.0" in text
    assert "workflows_unknown_type_waiting 0.0" in text


class Elsewhere(Workflow):
    """A type this bot does not run (a newer release's, say)."""

    def definition(self) -> Any:
        return S(Step("only", lambda: None))


async def test_metrics_count_workflows_of_types_this_process_does_not_run(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    store = bot.service.engine.db
    assert isinstance(store, SQLStore)
    other = Engine(store.url, workflows=[Elsewhere])  # stores it, runs nothing
    await other.start()
    try:
        wid = await other.new_workflow(Elsewhere())
        before = await other.db.get(wid)

        async def counted() -> bool:
            status, text = await get(f"{bot.url}/metrics")
            assert status == 200
            return "workflows_unknown_type_waiting 1.0" in text

        def reported() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "workflows.resumer"]

        await poll(counted, 10, "the workflow of an unknown type was not counted")
        await poll(reported, 10, "the workflow of an unknown type was not logged")
        after = await other.db.get(wid)
        assert (after.status, after.version, after.error) == ("running", before.version, None)
    finally:
        await other.close()
    assert reported()[0].levelno == logging.WARNING
    assert reported()[0].getMessage() == (
        "due workflows wait for a process that runs their type (this one does not): "
        "1 of 'Elsewhere'"
    )


async def test_healthz_fails_when_the_database_does_not_answer(slack: SlackStandin) -> None:
    server = PostgresServer().start()
    try:
        async with running_bot(slack, server.url) as bot:
            assert (await get(f"{bot.url}/healthz"))[0] == 200
            server.stop()
            status, body = await get(f"{bot.url}/healthz")
            assert status == 503
            assert json.loads(body) == {"status": "database unavailable"}
    finally:
        server.stop()


def test_json_logs_carry_the_workflow_id(capsys: pytest.CaptureFixture[str]) -> None:
    from workflows.observer import current_workflow

    configure_logging("INFO", "json")
    try:
        token = current_workflow.set("wf-123")
        logging.getLogger("anything").info("inside %s", "a step")
        current_workflow.reset(token)
        logging.getLogger("engine").warning("explicit", extra={"workflow_id": "wf-9"})
        logging.getLogger("engine").info("outside")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["message"], x["workflow_id"]) for x in lines] == [
        ("inside a step", "wf-123"),
        ("explicit", "wf-9"),
        ("outside", None),
    ]
    assert all(x["level"] in ("INFO", "WARNING") for x in lines)
