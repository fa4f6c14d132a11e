"""`approval-bot workflows ...`: the operator's tools, against the configured database.

Every change goes through the engine's row lock, is validated before it is saved, and is
recorded in the audit trail with the operator as actor. The running bot processes carry
out what follows (tearing down Slack messages, running the next step) within a sweep.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from bot.commands import UsageError, parse_duration
from bot.settings import SettingsError, load_settings
from workflows import Engine, WorkflowError
from workflows.approval import ApprovalRequest
from workflows.state import Status
from workflows.types import Record

T = TypeVar("T")
STATUSES = [s.value for s in Status]
WORKFLOWS = [ApprovalRequest]


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def with_engine(fn: Callable[[Engine], Awaitable[T]]) -> T:
    """Run `fn` with an engine on the configured database: no resumer, no Slack. Engine
    errors become one-line CLI errors."""

    async def run() -> T:
        try:
            settings = load_settings()
        except SettingsError as e:
            raise click.ClickException(str(e)) from None
        engine = Engine(settings.database_url, workflows=WORKFLOWS)
        try:
            await engine.start()
            return await fn(engine)
        except WorkflowError as e:
            raise click.ClickException(str(e)) from None
        finally:
            await engine.close()

    return asyncio.run(run())


def _json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2, sort_keys=True)


def _summary(record: Record) -> dict[str, Any]:
    steps = ", ".join(f"{t.id}@{t.step or 'start'}({t.status})" for t in record.state.threads)
    return {
        "id": record.id,
        "type": record.type,
        "status": record.status,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "threads": steps,
        "error": record.error,
    }


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
    """List workflows, newest first."""
    cutoff = None
    if older_than:
        try:
            cutoff = datetime.now(UTC) - parse_duration(older_than)
        except UsageError as e:
            raise click.BadParameter(str(e).replace("`", ""), param_hint="--older-than") from None

    records = with_engine(
        lambda engine: engine.db.list_workflows(
            status=status, limit=limit, newest_first=True, type=type_, created_before=cutoff
        )
    )
    if as_json:
        for record in records:
            click.echo(json.dumps(_summary(record), default=str))
        return
    click.echo(f"{'ID':32}  {'TYPE':10} {'STATUS':9} {'CREATED':19}  THREADS")
    for record in records:
        created = record.created_at.strftime("%Y-%m-%d %H:%M:%S") if record.created_at else ""
        s = _summary(record)
        click.echo(
            f"{record.id:32}  {record.type:10} {record.status:9} {created:19}  {s['threads']}"
        )
    click.echo(f"({len(records)} workflow{'s' if len(records) != 1 else ''})", err=True)


@workflows.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show(workflow_id: str, as_json: bool) -> None:
    """Show one workflow: data, execution state and audit history."""

    async def run(engine: Engine) -> tuple[Record, list[dict[str, Any]]]:
        return await engine.db.get(workflow_id), await engine.history(workflow_id)

    record, history = with_engine(run)
    document = {
        **_summary(record),
        "version": record.version,
        "attempts": record.attempts,
        "due_at": record.due_at,
        "output": record.output,
        "data": record.data,
        "state": record.state.to_data(),
        "history": history,
    }
    if as_json:
        click.echo(_json(document))
        return
    for key in (
        "id",
        "type",
        "status",
        "error",
        "attempts",
        "due_at",
        "created_at",
        "updated_at",
        "output",
    ):
        click.echo(f"{key:11} {document[key]}")
    click.echo("data:")
    click.echo(_indent(_json(record.data)))
    click.echo("threads:")
    for thread in record.state.threads:
        click.echo(f"  {thread.id}: {thread.status} at {thread.step or '(start)'}")
        for event in thread.events:
            error = f" error={event.error}" if event.error else ""
            click.echo(f"    waits for {event.name} ({event.type}, {event.status}){error}")
    click.echo("history:")
    for entry in history:
        click.echo(
            f"  {entry['created_at']} {entry['kind']} {entry['name']} "
            f"{entry['actor']} {json.dumps(entry['input'], default=str)}"
        )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


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

    async def run(engine: Engine) -> None:
        record = await engine.db.get(workflow_id)
        unknown = set(changes) - set(engine.workflows[record.type].model_fields)
        if unknown:
            raise click.ClickException(f"{record.type} has no field {', '.join(sorted(unknown))}")
        await engine.set_data(workflow_id, changes, actor=actor())

    with_engine(run)
    click.echo(f"updated {', '.join(changes)} of {workflow_id}")


@workflows.command()
@click.argument("workflow_id")
@click.argument("step")
@click.option("--thread", default="main", show_default=True)
def goto(workflow_id: str, step: str, thread: str) -> None:
    """Move a thread to the named statement (it runs next). Use `retry` after it on a
    failed workflow."""
    with_engine(lambda engine: engine.goto(workflow_id, step, thread, actor=actor()))
    click.echo(f"thread {thread} of {workflow_id} moved to {step!r}")


@workflows.command()
@click.argument("workflow_id")
def retry(workflow_id: str) -> None:
    """Run a failed workflow again from where its threads are."""
    with_engine(lambda engine: engine.retry(workflow_id, actor=actor()))
    click.echo(f"{workflow_id} will run again")


@workflows.command()
@click.argument("workflow_id")
@click.option("--reason", default="cancelled by an operator", show_default=True)
def cancel(workflow_id: str, reason: str) -> None:
    """Cancel a workflow; its open waits (Slack messages, timers) are torn down."""
    with_engine(lambda engine: engine.cancel(workflow_id, reason, actor=actor()))
    click.echo(f"{workflow_id} cancelled")


@workflows.command()
@click.option("--workflow", "workflow_id", help="Only this workflow's history.")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
def export(workflow_id: str | None, fmt: str) -> None:
    """Export the audit trail (every creation, callback and operator action)."""

    async def run(engine: Engine) -> list[dict[str, Any]]:
        if workflow_id is not None:
            return await engine.history(workflow_id)
        return await engine.db.history()

    entries = with_engine(run)
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
