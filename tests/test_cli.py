"""The operator CLI against a real database, next to the running bot that carries out what
the operator changes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot import messages
from bot.__main__ import cli
from bot.blueprints.approval.workflow import ApprovalRequest
from callbacks import default_callbacks
from callbacks.user_action import WaitForUserAction
from tests.helpers import ManualManager
from tests.processes import poll
from tests.slackbot import ALICE, BOB, CAROL, RITA, Bot, at
from workflows import CorruptWorkflow, Engine, schema
from workflows.store import SQLStore, async_url
from workflows.tables import W


async def run(bot: Bot, *args: str) -> Result:
    return await on(bot.service.settings.database_url, *args)


async def on(database_url: str, *args: str) -> Result:
    """The CLI, in a thread (the bot under test goes on serving in this one)."""
    env = {"DATABASE_URL": database_url}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


def by_title(result: Result) -> dict[str, dict[str, Any]]:
    """`list --json` lines by their summary's title."""
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line["summary"]["title"]: line for line in lines}


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
    shown_url = make_url(bot.service.settings.database_url).render_as_string()
    assert listed.stderr.splitlines() == [f"database: {shown_url}", "(2 workflows)"]
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "WHAT", "BY", "STATUS", "CREATED", "PEOPLE"]
    # Newest first, in the words of the people involved: what, who asked, how it stands.
    assert rows[0].startswith(f"{waiting[:8]}  Second  {RITA}  waiting ")
    assert rows[0].endswith(f"{BOB} waiting")
    assert rows[1].startswith(f"{done[:8]}  First   {RITA}  approved")
    assert rows[1].endswith(f"{ALICE} approved")

    only = await run(bot, "workflows", "list", "--status", "waiting", "--json")
    (line,) = [json.loads(line) for line in only.stdout.splitlines()]
    assert line["id"] == waiting
    assert (line["status"], line["threads"], line["corrupt"]) == (
        "waiting",
        f"main@decided(waiting_for), ask-{BOB}@decision {BOB}(blocked), "
        "watch deadline@deadline(blocked)",
        None,
    )
    assert line["summary"] == {
        "title": "Second",
        "started_by": RITA,
        "people": {BOB: "waiting"},
        "outcome": "",
        "status": "waiting",
    }
    typed = await run(bot, "workflows", "list", "--type", "nope", "--json")
    assert typed.stdout == ""
    old = await run(bot, "workflows", "list", "--older-than", "1h", "--json")
    assert old.stdout == ""

    shown = await run(bot, "workflows", "show", done, "--json")
    document = json.loads(shown.stdout)
    assert document["status"] == "finished"
    assert document["data"]["approved_by"] == [ALICE]
    assert document["state"]["threads"][0]["id"] == "main"
    assert document["output"]["outcome"] == "approved"
    assert [h["kind"] for h in document["history"]] == ["created", "callback"]
    assert document["summary"]["people"] == {ALICE: "approved"}
    assert document["summary"]["status"] == "approved"
    table = await run(bot, "workflows", "show", waiting)
    summary, detail = table.stdout.split("detail:\n")
    assert summary.splitlines() == [
        "Second",
        "status      waiting",
        f"started by  {RITA}",
        f"people      {BOB} waiting",
    ]
    assert f"  id          {waiting}\n  type        approval\n  status      waiting\n" in detail
    assert f"    waits for action {BOB} (slack_user_action, setup)" in detail
    assert "  history:\n" in detail

    exported = await run(bot, "workflows", "export")
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert sorted(kinds) == ["callback", "created", "created"]
    as_csv = await run(bot, "workflows", "export", "--workflow", done[:8], "--format", "csv")
    assert as_csv.stdout.splitlines()[0].startswith("id,workflow_id,kind")
    assert len(as_csv.stdout.splitlines()) == 3


async def test_the_status_is_the_outcome(bot: Bot) -> None:
    """Approved, denied, timed out, cancelled or failed, as the people involved would say."""
    await bot.slack.slash_command(RITA, f"{at(ALICE)} Approve me")
    await bot.slack.click(ALICE, await bot.dm(ALICE, "Approve me"), messages.APPROVE_ACTION)
    await bot.slack.slash_command(RITA, f"{at(BOB)} Deny me")
    await bot.slack.click(BOB, await bot.dm(BOB, "Deny me"), messages.DENY_ACTION)
    await poll(lambda: bot.slack.open_views(BOB), 10, "the modal did not open")
    (modal,) = bot.slack.open_views(BOB)
    reason = {messages.REASON_BLOCK: {messages.REASON_INPUT: "no ticket"}}
    await bot.slack.submit_view(BOB, modal, reason)
    await bot.slack.slash_command(RITA, f"{at(CAROL)} --timeout 1s Let me time out")
    await bot.slack.slash_command(RITA, f"{at(ALICE)} {at(CAROL)} Cancel me")
    for outcome in ("approved", "denied", "timed out"):
        await bot.dm(RITA, outcome)
    listed = await run(bot, "workflows", "list", "--json")
    cancel_me = by_title(listed)["Cancel me"]["id"]
    assert (await run(bot, "workflows", "cancel", cancel_me[:8])).exit_code == 0
    await bot.slack.slash_command(RITA, f"{at(BOB)} Fail me")
    failing = by_title(await run(bot, "workflows", "list", "--json"))["Fail me"]["id"]
    await bot.service.engine.db.mark_failed(failing, "broken on purpose")  # type: ignore[attr-defined]

    lines = by_title(await run(bot, "workflows", "list", "--json"))
    statuses = {title: line["summary"]["status"] for title, line in lines.items()}
    assert statuses == {
        "Approve me": "approved",
        "Deny me": "denied",
        "Let me time out": "timed out",
        "Cancel me": "cancelled",
        "Fail me": "failed",
    }
    assert lines["Let me time out"]["summary"]["people"] == {CAROL: "did not answer"}
    assert lines["Deny me"]["summary"]["people"] == {BOB: "denied"}
    table = (await run(bot, "workflows", "list")).stdout.splitlines()
    for title, status in statuses.items():
        (row,) = [r for r in table if f"  {title}  " in r]
        assert f"  {RITA}  {status}  " in row, row


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
    assert f"database is at schema revision {schema.head()}" in result.output


async def stored_requests(database_url: str, *ids: str) -> None:
    """Approval requests stored as the bot stores them, not yet run (no resumer)."""
    engine = Engine(
        database_url,
        workflows=[ApprovalRequest],
        callbacks={**default_callbacks(), WaitForUserAction.type: ManualManager()},
    )
    await engine.start()
    try:
        for wid in ids:
            text = f"Request {wid}\nwith a second line"
            await engine.new_workflow(
                ApprovalRequest(requester=RITA, approvers=[ALICE, BOB], text=text), id=wid
            )
    finally:
        await engine.close()


async def raw_sql(database_url: str, *statements: str) -> None:
    store = SQLStore(database_url)
    await store.start()
    try:
        async with store.engine.begin() as conn:
            for statement in statements:
                await conn.exec_driver_sql(statement)
    finally:
        await store.close()


async def test_a_corrupt_row_is_listed_as_corrupt(database_url: str) -> None:
    await stored_requests(database_url, "good-one", "bad-state", "bad-data", "bad-model")
    await raw_sql(
        database_url,
        """UPDATE workflows SET state = '{"threads": 7}' WHERE id = 'bad-state'""",
        """UPDATE workflows SET data = '"not an object"' WHERE id = 'bad-data'""",
        """UPDATE workflows SET data = '{"requester": "U0RITA"}' WHERE id = 'bad-model'""",
    )
    listed = await on(database_url, "workflows", "list")
    assert listed.exit_code == 0, listed.output
    assert "Traceback" not in listed.output
    assert (
        listed.stderr.splitlines()[-1]
        == "(4 workflows, 3 corrupt (`show ID` shows what is stored))"
    )
    rows = {row.split()[0]: row for row in listed.stdout.splitlines()[1:]}
    assert "Request good-one" in rows["good-one"]
    assert f"{RITA}  running " in rows["good-one"]
    assert "(cannot be read)" in rows["bad-stat"]
    assert (
        "  workflow 'bad-state': execution state is invalid: 1 validation error for State "
        "threads Input should be a valid array" in rows["bad-stat"]
    )
    assert rows["bad-data"].endswith("workflow 'bad-data': data is not a JSON object")
    # JSON that decodes but no longer fits the workflow's model: the engine refuses it too.
    assert "  corrupt  " in rows["bad-mode"]
    assert rows["bad-mode"].endswith(
        "workflow 'bad-model': data does not validate: approvers: Field required"
    )

    lines = {
        line["id"]: line
        for line in map(
            json.loads, (await on(database_url, "workflows", "list", "--json")).stdout.splitlines()
        )
    }
    assert lines["good-one"]["corrupt"] is None
    assert lines["good-one"]["summary"]["title"] == "Request good-one\nwith a second line"
    assert lines["bad-data"]["corrupt"] == "workflow 'bad-data': data is not a JSON object"
    assert (lines["bad-data"]["summary"], lines["bad-data"]["threads"]) == (None, None)
    assert lines["bad-data"]["status"] == "running"

    shown = await on(database_url, "workflows", "show", "bad-d")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(
        "CORRUPT: workflow 'bad-data': data is not a JSON object\ndetail:\n"
    )
    assert '  data (as stored):\n    "not an object"\n' in shown.stdout
    unfit = await on(database_url, "workflows", "show", "bad-mo")
    assert unfit.stdout.startswith(
        "CORRUPT: workflow 'bad-model': data does not validate: approvers: Field required\n"
    )
    assert '  data:\n    {\n      "requester": "U0RITA"\n    }\n  threads:\n' in unfit.stdout
    document = json.loads(
        (await on(database_url, "workflows", "show", "bad-state", "--json")).stdout
    )
    assert document["corrupt"].startswith("workflow 'bad-state': execution state is invalid")
    assert json.loads(document["state"]) == {"threads": 7}
    assert [h["kind"] for h in document["history"]] == ["created"]


async def test_text_that_is_not_json_is_listed_as_corrupt(tmp_path: Path) -> None:
    """SQLite keeps JSON as text, so a hand edit can leave it unparseable (PostgreSQL's
    jsonb refuses such a value)."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    await stored_requests(url, "good-one", "not-json")
    with sqlite3.connect(tmp_path / "bot.db") as db:
        db.execute("UPDATE workflows SET data = '{\"text\": \"unfinished' WHERE id = 'not-json'")
    listed = await on(url, "workflows", "list")
    assert listed.exit_code == 0, listed.output
    (row,) = [r for r in listed.stdout.splitlines() if r.startswith("not-json")]
    assert "  corrupt  " in row
    assert "workflow 'not-json': data is not JSON: EOF while parsing a string" in row
    assert "Request good-one" in listed.stdout
    shown = await on(url, "workflows", "show", "not-json")
    assert shown.exit_code == 0, shown.output
    assert '  data (as stored):\n    {"text": "unfinished\n' in shown.stdout
    # The engine's own listing names the row too, instead of failing somewhere in a decoder.
    store = SQLStore(url)
    await store.start()
    try:
        with pytest.raises(CorruptWorkflow, match="'not-json': data is not JSON"):
            await store.list_workflows()
    finally:
        await store.close()


async def test_an_id_can_be_shortened_to_a_unique_prefix(database_url: str) -> None:
    await stored_requests(database_url, "3fa2b1c9-one", "3fa2b1c9-two", "77aa_%x")
    shown = await on(database_url, "workflows", "show", "3fa2b1c9-o")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("Request 3fa2b1c9-one\nwith a second line\nstatus ")
    assert "  id          3fa2b1c9-one\n" in shown.stdout
    ambiguous = await on(database_url, "workflows", "show", "3fa2b1c9")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr.splitlines()[-1] == (
        "Error: id '3fa2b1c9' is ambiguous: 2 workflows start with it: 3fa2b1c9-one, 3fa2b1c9-two"
    )
    # `_` and `%` are what they are, not LIKE's wildcards.
    assert (await on(database_url, "workflows", "show", "77aa_%")).exit_code == 0
    for missing in ("77aa%%", "77a_", "3fa3", ""):
        result = await on(database_url, "workflows", "show", missing)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == f"Error: no workflow with id {missing!r}"
    cancelled = await on(database_url, "workflows", "cancel", "3fa2b1c9-t")
    assert cancelled.stdout == "3fa2b1c9-two cancelled\n"
    exported = await on(database_url, "workflows", "export", "--workflow", "3fa2b1c9-t")
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert kinds == ["created", "cancelled"]


READS_AND_REPAIRS = [
    ["workflows", "list"],
    ["workflows", "show", "3fa2b1c9"],
    ["workflows", "export"],
    ["workflows", "set", "3fa2b1c9", "quorum=2"],
    ["workflows", "goto", "3fa2b1c9", "start"],
    ["workflows", "retry", "3fa2b1c9"],
    ["workflows", "cancel", "3fa2b1c9"],
]


def test_no_command_but_migrate_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "sandbox.db"
    url = f"sqlite:///{missing}"
    for args in READS_AND_REPAIRS:
        result = CliRunner().invoke(cli, args, env={"DATABASE_URL": url})
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.splitlines() == [
            f"database: {url}",
            f"Error: no database at {missing} (DATABASE_URL={url}); point DATABASE_URL at "
            "the bot's database, e.g. for the sandbox's: DATABASE_URL=sqlite:///sandbox.db, "
            "from the directory the sandbox runs in",
        ], args
        assert list(tmp_path.iterdir()) == [], args
    created = CliRunner().invoke(cli, ["migrate"], env={"DATABASE_URL": url})
    assert created.exit_code == 0, created.output
    assert created.stderr == f"database: {url}\n"
    listed = CliRunner().invoke(cli, ["workflows", "list"], env={"DATABASE_URL": url})
    assert listed.exit_code == 0, listed.output
    assert listed.stderr.splitlines() == [f"database: {url}", "(0 workflows)"]


async def test_a_database_without_the_tables_is_refused_and_left_as_it_is(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        sqlite3.connect(tmp_path / "workflows.db").close()  # an empty file
    for args in READS_AND_REPAIRS:
        result = await on(database_url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.splitlines()[-1] == (
            f"Error: DATABASE_URL={database_url}: the database has no workflow tables; point "
            "DATABASE_URL at the bot's database (the sandbox's: DATABASE_URL=sqlite:///"
            "sandbox.db, from the directory the sandbox runs in), or create the tables with "
            "`approval-bot migrate`"
        ), args
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert tables == []


async def test_an_older_schema_is_not_upgraded_by_a_read(database_url: str) -> None:
    await stored_requests(database_url, "3fa2b1c9")
    await raw_sql(database_url, "UPDATE alembic_version SET version_num = '0001'")
    result = await on(database_url, "workflows", "show", "3fa2b1c9")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: DATABASE_URL={database_url}: the database schema is at revision '0001', "
        f"older than this code's {schema.head()!r}; run `approval-bot migrate` first"
    )


async def test_the_password_is_never_printed() -> None:
    url = "postgresql://operator:secret-pw@127.0.0.1:1/approvals"
    result = await on(url, "workflows", "list")
    assert result.exit_code == 1
    shown = "postgresql://operator:***@127.0.0.1:1/approvals"
    assert result.stderr.splitlines() == [
        f"database: {shown}",
        f"Error: DATABASE_URL: cannot connect to {shown}: "
        "[Errno 111] Connect call failed ('127.0.0.1', 1)",
    ]
    assert "secret-pw" not in result.output
