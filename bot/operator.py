"""`approval-bot workflows ...`: the operator's tools, against the configured database.

Every change goes through the engine's row lock, is validated before it is saved, and is
recorded in the audit trail with the operator as actor. The running bot processes carry
out what follows (tearing down Slack messages, running the next step) within a sweep.

Every command says on stderr which database it works on, and none creates one: a missing
SQLite file or a database without the tables is an error naming DATABASE_URL (only
`approval-bot migrate` creates and upgrades). An id may be shortened to any unique
prefix, as git takes them.

The commands are defined here without the engine: it is imported when a command runs, so
`approval-bot --help` does not wait for SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from bot.views import View
    from workflows import Engine
    from workflows.store import SQLStore

T = TypeVar("T")
STATUSES = ["running", "waiting", "finished", "failed", "cancelled"]
"""`workflows.state.Status`, spelled out so that `--help` need not import the engine."""
CANDIDATES = 10
"""How many ids an ambiguous prefix names."""
SANDBOX_HINT = "DATABASE_URL=sqlite:///sandbox.db, from the directory the sandbox runs in"


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


@dataclass
class Database:
    """The configured database, opened for an operator command (no resumer, no Slack)."""

    engine: Engine
    store: SQLStore

    async def resolve(self, given: str) -> str:
        """The id `given` stands for: a whole id, or the start of exactly one."""
        from workflows import WorkflowNotFound

        found = await self.store.ids_starting_with(given, CANDIDATES + 1) if given else []
        if given in found:
            return given
        if not found:
            raise WorkflowNotFound(f"no workflow with id {given!r}")
        if len(found) > 1:
            count = f"more than {CANDIDATES}" if len(found) > CANDIDATES else str(len(found))
            raise click.ClickException(
                f"id {given!r} is ambiguous: {count} workflows start with it: "
                + ", ".join(found[:CANDIDATES])
            )
        return found[0]

    async def view(self, workflow_id: str) -> View:
        from bot.views import view

        return view(await self.store.read(workflow_id), self.engine.workflows)


def with_database(fn: Callable[[Database], Awaitable[T]], *, migrate: bool = False) -> T:
    """Run `fn` on the configured database, after saying on stderr which one it is.
    Without `migrate`, a database that does not exist, or lacks the current tables, is
    refused rather than created. Errors become one-line CLI errors."""
    from bot.loading import load_blueprints
    from bot.settings import SettingsError, load_settings
    from workflows import DatabaseUnavailable, Engine, UnknownWorkflowType, WorkflowError
    from workflows.schema import SchemaNotCurrent
    from workflows.store import SQLStore, shown_url

    try:
        settings = load_settings()
        blueprints = load_blueprints(settings.blueprints)
    except SettingsError as e:
        raise click.ClickException(str(e)) from None
    url = settings.database_url
    click.echo(f"database: {shown_url(url)}", err=True)
    store = SQLStore(url, migrate=migrate)
    path = store.sqlite_path
    if not migrate and path is not None and not Path(path).exists():
        raise click.ClickException(
            f"no database at {path} (DATABASE_URL={shown_url(url)}); point DATABASE_URL "
            f"at the bot's database, e.g. for the sandbox's: {SANDBOX_HINT}"
        )
    # The workflow types of the loaded blueprints, as the running bot knows them.
    engine = Engine(db=store, workflows=blueprints.workflows)

    async def run() -> T:
        try:
            await engine.start()
            return await fn(Database(engine, store))
        except SchemaNotCurrent as e:
            advice = (
                f"point DATABASE_URL at the bot's database (the sandbox's: {SANDBOX_HINT}), "
                "or create the tables with `approval-bot migrate`"
                if e.found is None
                else "run `approval-bot migrate` first"
            )
            raise click.ClickException(f"DATABASE_URL={shown_url(url)}: {e}; {advice}") from None
        except DatabaseUnavailable as e:
            raise click.ClickException(f"DATABASE_URL: {e}") from None
        except UnknownWorkflowType as e:
            raise click.ClickException(
                f"{e}: no blueprint in BLUEPRINTS ({', '.join(blueprints.names)}) defines it"
            ) from None
        except WorkflowError as e:
            raise click.ClickException(str(e)) from None
        finally:
            await engine.close()

    return asyncio.run(run())


@click.group()
def workflows() -> None:
    """Inspect and repair workflows (list, show, set, goto, retry, cancel, export)."""


@workflows.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only workflows in this status.")
@click.option("--type", "type_", help="Only workflows of this type (e.g. approval).")
@click.option("--older-than", help="Only workflows created longer ago than this (e.g. 2h, 1d).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def list_(
    status: str | None, type_: str | None, older_than: str | None, limit: int, as_json: bool
) -> None:
    """List workflows, newest first: what each is about, who started it, how it stands,
    everyone's answers. A row that cannot be read is listed as corrupt, with the reason."""
    from bot.blueprint import UsageError
    from bot.durations import parse_duration
    from bot.views import listed, table, view

    cutoff = None
    if older_than:
        try:
            cutoff = datetime.now(UTC) - parse_duration(older_than)
        except UsageError as e:
            raise click.BadParameter(str(e).replace("`", ""), param_hint="--older-than") from None

    async def run(db: Database) -> list[View]:
        entries = await db.store.listing(
            status=status, limit=limit, newest_first=True, type=type_, created_before=cutoff
        )
        return [view(e, db.engine.workflows) for e in entries]

    views = with_database(run)
    if as_json:
        for v in views:
            click.echo(json.dumps(listed(v), default=str))
        return
    for line in table(views):
        click.echo(line)
    corrupt = sum(1 for v in views if v.problem is not None)
    note = f", {corrupt} corrupt (`show ID` shows what is stored)" if corrupt else ""
    click.echo(f"({len(views)} workflow{'s' if len(views) != 1 else ''}{note})", err=True)


@workflows.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show(workflow_id: str, as_json: bool) -> None:
    """Show one workflow: what it is about and how it stands, then its data, execution
    state and audit history. WORKFLOW_ID may be a unique prefix."""
    from bot.views import as_json as dumps
    from bot.views import document, shown

    async def run(db: Database) -> tuple[View, list[dict[str, Any]]]:
        wid = await db.resolve(workflow_id)
        return await db.view(wid), await db.store.history(wid)

    v, history = with_database(run)
    if as_json:
        click.echo(dumps(document(v, history)))
        return
    for line in shown(v, history):
        click.echo(line)


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@workflows.command("set")
@click.argument("workflow_id")
@click.argument("assignments", nargs=-1, required=True)
def set_(workflow_id: str, assignments: tuple[str, ...]) -> None:
    """Set data fields: FIELD=VALUE ... (VALUE is JSON, or else a string). The result must
    validate against the workflow's model, or nothing changes."""
    changes: dict[str, Any] = {}
    for item in assignments:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="ASSIGNMENTS")
        changes[field] = _value(raw)

    from workflows import UnknownWorkflowType

    async def run(db: Database) -> str:
        wid = await db.resolve(workflow_id)
        record = await db.store.get(wid)
        model = db.engine.workflows.get(record.type)
        if model is None:
            raise UnknownWorkflowType(f"workflow type {record.type!r} is not registered")
        unknown = set(changes) - set(model.model_fields)
        if unknown:
            raise click.ClickException(f"{record.type} has no field {', '.join(sorted(unknown))}")
        await db.engine.set_data(wid, changes, actor=actor())
        return wid

    wid = with_database(run)
    click.echo(f"updated {', '.join(changes)} of {wid}")


@workflows.command()
@click.argument("workflow_id")
@click.argument("step")
@click.option("--thread", default="main", show_default=True)
def goto(workflow_id: str, step: str, thread: str) -> None:
    """Move a thread to the named statement (it runs next). Use `retry` after it on a
    failed workflow."""

    async def run(db: Database) -> str:
        wid = await db.resolve(workflow_id)
        await db.engine.goto(wid, step, thread, actor=actor())
        return wid

    wid = with_database(run)
    click.echo(f"thread {thread} of {wid} moved to {step!r}")


@workflows.command()
@click.argument("workflow_id")
def retry(workflow_id: str) -> None:
    """Run a failed workflow again from where its threads are."""

    async def run(db: Database) -> str:
        wid = await db.resolve(workflow_id)
        await db.engine.retry(wid, actor=actor())
        return wid

    click.echo(f"{with_database(run)} will run again")


@workflows.command()
@click.argument("workflow_id")
@click.option("--reason", default="cancelled by an operator", show_default=True)
def cancel(workflow_id: str, reason: str) -> None:
    """Cancel a workflow; its open waits (Slack messages, timers) are torn down."""

    async def run(db: Database) -> str:
        wid = await db.resolve(workflow_id)
        await db.engine.cancel(wid, reason, actor=actor())
        return wid

    click.echo(f"{with_database(run)} cancelled")


@workflows.command()
@click.option("--workflow", "workflow_id", help="Only this workflow's history (id or prefix).")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
def export(workflow_id: str | None, fmt: str) -> None:
    """Export the audit trail (every creation, callback and operator action)."""

    async def run(db: Database) -> list[dict[str, Any]]:
        if workflow_id is not None:
            return await db.store.history(await db.resolve(workflow_id))
        return await db.store.history()

    entries = with_database(run)
    if fmt == "jsonl":
        for entry in entries:
            click.echo(json.dumps(entry, default=str))
        return
    fields = [
        "id",
        "workflow_id",
        "kind",
        "name",
        "thread_id",
        "pc",
        "actor",
        "input",
        "output",
        "created_at",
    ]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for entry in entries:
        writer.writerow(
            {
                k: json.dumps(v, default=str) if k in ("input", "output") else v
                for k, v in entry.items()
            }
        )
