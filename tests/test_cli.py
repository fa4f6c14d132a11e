"""The operator CLI against a real database, next to the running bot that carries out what
the operator changes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner, Result

from bot import messages
from bot.__main__ import cli
from tests.processes import poll
from tests.slackbot import ALICE, BOB, RITA, Bot, at
from workflows.store import SQLStore
from workflows.tables import W


async def run(bot: Bot, *args: str) -> Result:
    env = {"DATABASE_URL": bot.service.settings.database_url}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def two_requests(bot: Bot) -> tuple[str, str]:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} First")
    first = await bot.dm(ALICE, "First")
    await bot.slack.slash_command(RITA, f"{at(BOB)} Second")
    await bot.dm(BOB, "Second")
    await bot.slack.click(ALICE, first, messages.APPROVE_ACTION)
    await bot.dm(RITA, "approved")
    records = await bot.service.engine.db.list_workflows()
    return records[0].id, records[1].id


async def test_list_show_export(bot_on_each_db: Bot) -> None:
    bot = bot_on_each_db
    done, waiting = await two_requests(bot)
    listed = await run(bot, "workflows", "list")
    assert listed.exit_code == 0, listed.output
    assert done in listed.output
    assert waiting in listed.output
    only = await run(bot, "workflows", "list", "--status", "waiting", "--json")
    assert [json.loads(line)["id"] for line in only.stdout.splitlines()] == [waiting]
    typed = await run(bot, "workflows", "list", "--type", "nope", "--json")
    assert typed.stdout == ""
    old = await run(bot, "workflows", "list", "--older-than", "1h", "--json")
    assert old.stdout == ""
    shown = await run(bot, "workflows", "show", done, "--json")
    document = json.loads(shown.stdout)
    assert document["status"] == "finished"
    assert document["data"]["approved_by"] == [ALICE]
    assert [h["kind"] for h in document["history"]] == ["created", "callback"]
    table = await run(bot, "workflows", "show", waiting)
    assert "waits for action U0BOB (slack_user_action, setup)" in table.output
    exported = await run(bot, "workflows", "export")
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert sorted(kinds) == ["callback", "created", "created"]
    as_csv = await run(bot, "workflows", "export", "--workflow", done, "--format", "csv")
    assert as_csv.stdout.splitlines()[0].startswith("id,workflow_id,kind")
    assert len(as_csv.stdout.splitlines()) == 3


async def test_bad_input_is_refused_and_changes_nothing(bot: Bot) -> None:
    _, waiting = await two_requests(bot)
    before = await bot.service.engine.db.get(waiting)
    cases: list[tuple[list[str], str]] = [
        (["workflows", "show", "nope"], "no workflow with id 'nope'"),
        (["workflows", "set", waiting, "quorum=many"], "the new data does not validate"),
        (["workflows", "set", waiting, "quorum=0"], "the quorum must be at least 1 (it is 0)"),
        (["workflows", "set", waiting, "quorum=2"], "the quorum (2) is more than the 1 approver"),
        (["workflows", "set", waiting, "approvers=[]"], "name at least one approver"),
        (["workflows", "set", waiting, "colour=blue"], "approval has no field colour"),
        (["workflows", "set", waiting, "quorum"], "is not FIELD=VALUE"),
        (["workflows", "goto", waiting, "teleport"], "no statement 'teleport'"),
        (["workflows", "retry", waiting], "is waiting, not failed"),
        (["workflows", "list", "--status", "sleeping"], "Invalid value for '--status'"),
        (["workflows", "list", "--older-than", "soon"], "soon is not a duration"),
    ]
    for args, problem in cases:
        result = await run(bot, *args)
        assert result.exit_code != 0, args
        assert problem in result.output, (args, result.output)
    after = await bot.service.engine.db.get(waiting)
    assert (after.version, after.data) == (before.version, before.data)


async def test_cancel_tears_down_the_slack_messages(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(BOB)} Cancel me")
    to_alice = await bot.request_dm(ALICE)
    to_bob = await bot.request_dm(BOB)
    wid = await bot.only_workflow()
    result = await run(bot, "workflows", "cancel", wid, "--reason", "duplicate request")
    assert result.exit_code == 0, result.output
    await bot.gone(to_alice)
    await bot.gone(to_bob)
    info = await bot.service.engine.get(wid)
    assert (info.status, info.error) == ("cancelled", "duplicate request")
    history = await bot.service.engine.history(wid)
    assert history[-1]["kind"] == "cancelled"
    assert history[-1]["actor"].startswith("cli:")
    told = await bot.dm(RITA, "cancelled")
    assert "Your request was *cancelled* by an operator." in told.text
    assert "*Reason:* duplicate request" in told.text
    assert ">Cancel me" in told.text

    async def settled() -> bool:
        return (await bot.service.engine.db.get(wid)).state.orphans == []

    await poll(settled, 15, "the cancel's teardowns were not all done")
    assert len([m for m in bot.slack.visible(RITA) if "cancelled" in m.text]) == 1


async def test_repair_a_workflow_whose_step_was_removed(bot: Bot) -> None:
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Repair me")
    await bot.request_dm(ALICE)
    wid = await bot.only_workflow()
    store = bot.service.engine.db
    assert isinstance(store, SQLStore)
    # An older release left the main thread at a step this release no longer has.
    record = await store.get(wid)
    state: dict[str, Any] = record.state.to_data()
    state["threads"][0].update(step="legacy notice", status="running")
    async with store.engine.begin() as conn:
        await conn.execute(
            W.update()
            .where(W.c.id == wid)
            .values(state=state, version=W.c.version + 1, due_at=sa.func.now())
        )
    await poll(lambda: failed(bot, wid), 15, "the workflow did not fail")
    info = await bot.service.engine.db.get(wid)
    assert "statement 'legacy notice' (thread 'main') no longer exists" in (info.error or "")
    await bot.dm(RITA, "failed")  # the requester is told

    assert (await run(bot, "workflows", "set", wid, f'approved_by=["{ALICE}"]')).exit_code == 0
    assert (await run(bot, "workflows", "goto", wid, "decided")).exit_code == 0
    retried = await run(bot, "workflows", "retry", wid)
    assert retried.exit_code == 0, retried.output
    await poll(lambda: finished(bot, wid), 15, "the repaired workflow did not finish")
    await bot.dm(RITA, "approved")
    info = await bot.service.engine.db.get(wid)
    assert info.output["outcome"] == "approved"
    kinds = [(h["kind"], h["actor"][:4]) for h in await bot.service.engine.history(wid)]
    assert kinds[-3:] == [("data_set", "cli:"), ("goto", "cli:"), ("retried", "cli:")]


async def failed(bot: Bot, wid: str) -> bool:
    return await bot.status(wid) == "failed"


async def finished(bot: Bot, wid: str) -> bool:
    return await bot.status(wid) == "finished"


async def test_migrate_command(bot: Bot) -> None:
    result = await run(bot, "migrate")
    assert result.exit_code == 0, result.output
    assert "database is at schema revision 0003" in result.output
