"""The Web API methods the bot calls, as Slack's method reference states them.

One table, read by the bot's rate limiter (each method's tier), by the built-in Slack
(which scope a call needs, whether a JSON body is read, the tiers it enforces) and by the
tests that derive the scopes the bot needs from its code, so the scopes the blueprints
declare (and `manifest.yml`, printed from them) are exactly those. `read_manifest` is what
the built-in Slack grants by default: the committed `manifest.yml`.

Slack takes the arguments of every method from the query string of a GET or from the body of
a POST (form-encoded, mixed with the query string, or JSON for the methods that accept it);
`preferred` is the verb its reference names. Methods that do not read JSON bodies ignore
them: the call is answered as though no argument had been sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.ratelimit import Rate

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"

Tier = Literal[1, 2, 3, 4, "special"]


@dataclass(frozen=True)
class Method:
    """`scope` is the bot scope the call needs (None: none). `by_conversation` replaces it
    for methods whose scope depends on the kind of conversation, keyed by the first letter
    of the conversation ID (`D` a DM, `C` a public channel, `G` a private one). `tier` is
    Slack's rate-limit tier (see `slack_rate`). `token` is the kind of token the method takes."""

    name: str
    preferred: Literal["GET", "POST"]
    json: bool
    tier: Tier
    scope: str | None = None
    by_conversation: Mapping[str, str] = field(default_factory=dict)
    token: Literal["bot", "app"] = "bot"

    def needs(self, channel: str = "") -> str | None:
        """The scope a call needs; for a conversation-dependent method, on `channel`."""
        if self.by_conversation:
            return self.by_conversation.get(channel[:1])
        return self.scope

    @property
    def scopes(self) -> frozenset[str]:
        """Every scope the method can need."""
        if self.by_conversation:
            return frozenset(self.by_conversation.values())
        return frozenset({self.scope} if self.scope else ())


HISTORY = {"D": "im:history", "C": "channels:history", "G": "groups:history"}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("auth.test", "POST", json=True, tier="special"),
        Method("chat.postMessage", "POST", json=True, tier="special", scope="chat:write"),
        Method("chat.postEphemeral", "POST", json=True, tier=4, scope="chat:write"),
        Method("chat.update", "POST", json=True, tier=3, scope="chat:write"),
        Method("chat.delete", "POST", json=True, tier=3, scope="chat:write"),
        Method("chat.getPermalink", "GET", json=False, tier="special"),
        Method("conversations.open", "POST", json=True, tier=3, scope="im:write"),
        Method("conversations.history", "GET", json=False, tier=3, by_conversation=HISTORY),
        Method("conversations.replies", "GET", json=False, tier=3, by_conversation=HISTORY),
        Method("users.info", "GET", json=False, tier=4, scope="users:read"),
        Method("usergroups.users.list", "GET", json=False, tier=2, scope="usergroups:read"),
        Method("views.open", "POST", json=True, tier=4),
        Method("views.update", "POST", json=True, tier=4),
        Method("views.push", "POST", json=True, tier=4),
        Method("views.publish", "POST", json=True, tier=4),
        # Socket Mode: an app-level token with connections:write, not the bot token.
        Method(
            "apps.connections.open",
            "POST",
            json=False,
            tier=1,
            scope="connections:write",
            token="app",
        ),
    )
}


# Calls a minute, per workspace, and the burst tolerated after a quiet spell ("+" in
# Slack's wording), by tier; "special" methods have limits of their own below.
TIER_RATES: dict[Tier, Rate] = {
    1: Rate(1, burst=1),
    2: Rate(20, burst=3),
    3: Rate(50, burst=5),
    4: Rate(100, burst=10),
}
SPECIAL_RATES: dict[str, Rate] = {
    "auth.test": Rate(600, burst=50),
    "chat.getPermalink": Rate(600, burst=50),
    # About one message a second per channel, short bursts allowed (by channel, see below).
    "chat.postMessage": Rate(60, burst=3),
}
PER_CHANNEL = frozenset({"chat.postMessage"})


def budget_key(method: str, channel: str = "") -> str:
    """What one rate budget covers: a method in the workspace, or in one channel."""
    return f"{method}:{channel}" if method in PER_CHANNEL and channel else method


def slack_rate(key: str) -> Rate | None:
    """Slack's rate for a budget (`budget_key`); None for a method it does not limit."""
    name = key.split(":", 1)[0]
    method = METHODS.get(name)
    if method is None:
        return None
    if method.tier == "special":
        return SPECIAL_RATES.get(name)
    return TIER_RATES[method.tier]


def read_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    return manifest


def bot_scopes(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The bot scopes the manifest asks for, in its order."""
    return tuple(str(s) for s in manifest["oauth_config"]["scopes"]["bot"])


def slash_commands(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The slash commands the manifest declares, in its order."""
    return tuple(str(c["command"]) for c in manifest.get("features", {}).get("slash_commands", []))


def bot_events(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The bot events the manifest subscribes to."""
    subscriptions = manifest.get("settings", {}).get("event_subscriptions", {})
    return tuple(str(e) for e in subscriptions.get("bot_events", []))


def home_tab_enabled(manifest: dict[str, Any]) -> bool:
    return bool(manifest.get("features", {}).get("app_home", {}).get("home_tab_enabled"))
