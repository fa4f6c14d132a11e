"""`python -m bot` / `approval-bot`: run the Slack approval bot.

Only click is imported up front: each command imports what it needs when it runs, so
`--help` (and a mistyped command) answers at once instead of after the seconds it takes
to load Slack, the engine and SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from bot.operator import with_database, workflows

if TYPE_CHECKING:
    from bot.operator import Database


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """The Slack approval bot. Without a command: run it (same as `run`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@cli.command()
def run() -> None:
    """Serve Slack over HTTP, or Socket Mode when SLACK_APP_TOKEN is set."""
    from bot.logs import configure_logging
    from bot.server import serve
    from bot.service import build
    from bot.settings import SettingsError, load_settings
    from workflows import WorkflowError

    try:
        settings = load_settings()
        settings.require_slack()
    except SettingsError as e:
        raise click.ClickException(str(e)) from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(build(settings)))
    except (SettingsError, WorkflowError) as e:  # e.g. a refused token, a newer schema
        raise click.ClickException(str(e)) from None


@cli.command()
@click.option("--port", default=3000, show_default=True, help="Port of the page and the bot.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--database-url",
    default="sqlite:///sandbox.db",
    show_default=True,
    help="Where the sandbox keeps its workflows.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start empty: forget the workflows and messages of earlier runs (SQLite only).",
)
def sandbox(port: int, host: str, database_url: str, fresh: bool) -> None:
    """Run the real bot against a built-in Slack, with a page to use it: no workspace needed.
    Workflows and the built-in Slack's messages are kept across restarts."""
    from bot.logs import configure_logging
    from bot.sandbox.page import forget, serve_sandbox

    configure_logging("INFO")
    if fresh:
        try:
            forget(database_url)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    from bot.settings import SettingsError

    try:
        asyncio.run(serve_sandbox(host, port, database_url))
    except SettingsError as e:  # e.g. BLUEPRINTS names a module that cannot be loaded
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror}") from None


@cli.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL) up to date with this release, then exit."""
    from workflows import schema

    async def started(db: Database) -> None:
        """Opening the database with `migrate=True` is what migrates."""

    with_database(started, migrate=True)
    click.echo(f"database is at schema revision {schema.head()}")


@cli.command()
def manifest() -> None:
    """Print the Slack app manifest (YAML) for the blueprints in BLUEPRINTS: create the
    app from it (api.slack.com/apps -> From an app manifest)."""
    from bot.loading import load_blueprints
    from bot.manifest import render
    from bot.settings import SettingsError, load_settings

    try:
        blueprints = load_blueprints(load_settings().blueprints)
    except SettingsError as e:
        raise click.ClickException(str(e)) from None
    click.echo(render(blueprints), nl=False)


cli.add_command(workflows)


def main() -> None:
    cli(prog_name="approval-bot")


if __name__ == "__main__":
    main()
