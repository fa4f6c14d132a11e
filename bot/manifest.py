"""The Slack app manifest for the loaded blueprints (`approval-bot manifest`).

Everything in it follows from the blueprints: one slash command per launched command, with
its description and usage hint; interactivity (the base's buttons and modals); the bot
scopes the base and each blueprint declare, each with what it is for as a comment; the Home
tab and the bot events only when a blueprint uses them. The committed `manifest.yml` is this
output for the shipped blueprints (a test holds them equal), and the built-in Slack grants
what `manifest.yml` asks for (bot.slackapi), as a workspace installing the app would.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from bot.blueprint import Launch
from bot.loading import Blueprints

HOST = "YOUR-HOST"
URL = f"https://{HOST}/slack/events"
DISPLAY = {
    "name": "Approvals",
    "description": "Approval requests that cannot be lost, answered with Approve / Deny.",
    "background_color": "#1d3b53",
}
BOT_USER = {"display_name": "approvals", "always_online": True}
WIDTH = 100
SCOPE_ITEM = "      - "  # a scope in oauth_config.scopes.bot

HEADER = f"""\
# Slack app manifest: https://api.slack.com/apps -> Create New App -> From an app manifest.
# Replace {HOST} with the public HTTPS address of the bot (HTTP mode), or set
# socket_mode_enabled to true and delete every `url` / `request_url` line (Socket Mode).
"""


def manifest(blueprints: Blueprints) -> dict[str, Any]:
    """The manifest as data."""
    features: dict[str, Any] = {"bot_user": dict(BOT_USER)}
    if blueprints.home_tab:
        features["app_home"] = {"home_tab_enabled": True, "messages_tab_enabled": True}
    commands = [
        slash_command(command, launches) for command, launches in blueprints.commands().items()
    ]
    if commands:
        features["slash_commands"] = commands
    settings: dict[str, Any] = {}
    if blueprints.events:
        settings["event_subscriptions"] = {"request_url": URL, "bot_events": blueprints.events}
    settings.update(
        interactivity={"is_enabled": True, "request_url": URL},
        org_deploy_enabled=False,
        socket_mode_enabled=False,
        token_rotation_enabled=False,
    )
    return {
        "display_information": dict(DISPLAY),
        "features": features,
        "oauth_config": {"scopes": {"bot": list(blueprints.scopes())}},
        "settings": settings,
    }


def slash_command(command: str, launches: list[Launch[Any]]) -> dict[str, Any]:
    """A command as Slack's autocompletion shows it; a command with subcommands lists
    them all."""
    if len(launches) == 1 and not launches[0].subcommand:
        description, usage = launches[0].description, launches[0].usage
    else:
        description = " · ".join(
            f"{launch.subcommand}: {launch.description}" for launch in launches
        )
        usage = " | ".join(f"{launch.subcommand} {launch.usage}".rstrip() for launch in launches)
    entry: dict[str, Any] = {"command": command, "url": URL, "description": description[:2000]}
    if usage:
        entry["usage_hint"] = usage[:1000]
    entry["should_escape"] = True
    return entry


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as Slack's own examples write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render(blueprints: Blueprints) -> str:
    """The manifest as YAML, with the header and what each scope is for."""
    data = manifest(blueprints)
    # Never folded: a long description stays on its line.
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**16)
    reasons = blueprints.scopes()
    pad = max(map(len, reasons), default=0)
    lines: list[str] = []
    in_scopes = False
    for line in body.splitlines():
        in_scopes = line == "    bot:" or (in_scopes and line.startswith(SCOPE_ITEM))
        scope = line.removeprefix(SCOPE_ITEM)
        if in_scopes and scope in reasons:
            head = f"{line:<{len(SCOPE_ITEM) + pad}}   # "
            wrapped = textwrap.wrap("; ".join(reasons[scope]), WIDTH - len(head))
            lines.append(head + wrapped[0])
            lines.extend(" " * (len(head) - 2) + "# " + more for more in wrapped[1:])
        else:
            lines.append(line)
    origin = textwrap.wrap(
        "Printed by `approval-bot manifest` for the blueprints in BLUEPRINTS "
        f"({', '.join(blueprints.names)}): change those, not this file, and print it again.",
        WIDTH - 2,
    )
    header = HEADER + "".join(f"# {line}\n" for line in origin)
    return header + "\n".join(lines) + "\n"
