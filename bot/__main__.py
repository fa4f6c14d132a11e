"""`python -m bot` / `approval-bot`: run the Slack approval bot."""

from __future__ import annotations

import asyncio

import click

from bot.logs import configure_logging
from bot.settings import SettingsError, load_settings
from workflows import WorkflowError


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """The Slack approval bot. Without a command: run it (same as `run`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@cli.command()
def run() -> None:
    """Serve Slack over HTTP, or Socket Mode when SLACK_APP_TOKEN is set."""
    from bot.server import serve
    from bot.service import build

    try:
        settings = load_settings()
        settings.require_slack()
    except SettingsError as e:
        raise click.ClickException(str(e)) from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(build(settings)))
    except WorkflowError as e:  # e.g. a database schema newer than this release
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
    from bot.sandbox.page import forget, serve_sandbox

    configure_logging("INFO")
    if fresh:
        try:
            forget(database_url)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    try:
        asyncio.run(serve_sandbox(host, port, database_url))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror}") from None


@cli.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL) up to date with this release, then exit."""
    from bot.operator import with_engine
    from workflows import Engine, schema

    async def started(engine: Engine) -> None:
        """Starting the engine is what migrates."""

    with_engine(started)
    click.echo(f"database is at schema revision {schema.head()}")


def _register_operator_commands() -> None:
    from bot.operator import workflows

    cli.add_command(workflows)


_register_operator_commands()


def main() -> None:
    cli(prog_name="approval-bot")


if __name__ == "__main__":
    main()
