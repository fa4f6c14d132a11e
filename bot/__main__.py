"""`python -m bot` / `approval-bot`: run the Slack approval bot."""

from __future__ import annotations

import asyncio
import logging

import click

from bot.settings import SettingsError, load_settings


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
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(build(settings)))


def main() -> None:
    cli(prog_name="approval-bot")


if __name__ == "__main__":
    main()
