"""A local Slack: the Web API the bot calls, and Slack's side of the conversation.

As the Web API (reached through `SLACK_API_URL`) it answers the methods in
`bot.slackapi` the way Slack does, and refuses what Slack refuses: `not_authed` and
`invalid_auth`, `missing_scope` for a call the token's scopes (those `manifest.yml` asks for)
do not cover, arguments read as Slack reads them (a GET's from its query string, a JSON body
only by methods that take JSON), Block Kit that slack_sdk's models reject (`invalid_blocks`,
`invalid_arguments` for views), `D…` conversation IDs for DMs opened by posting to a user ID,
`channel_not_found` when `chat.delete` is given a user ID, `not_in_channel` for a post in
a channel the bot is not a member of (it is in #general), `message_not_found`,
`expired_trigger_id` three seconds after a click, Slack's rate limits by tier (HTTP 429
with `Retry-After`, `bot.sandbox.tiers`, on a Slack minute that tests and benchmarks
compress), and, when asked to, 429s or 500s of its own. It records every call and every
answer.

As Slack's side it signs slash commands (only the app's own, those `manifest.yml`
declares), button clicks (in messages, and in views: a modal or the Home tab, without a
`response_url`), modal submissions and the `app_home_opened` event (as JSON, only when the
manifest subscribes to it, and only for an app with a Home tab) with the signing secret
and sends them to the app over HTTP (or, when the app connected through Socket Mode, as
envelopes over the websocket), serves `response_url`, and keeps what each user would see: messages,
ephemeral messages, open modals, their Home tab (one view, its id kept when published
again).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.ratelimit import Rate
from bot.sandbox.blockkit import MESSAGE_TEXT, BlockKitError, check_blocks, check_view
from bot.sandbox.inputs import submission_state
from bot.sandbox.tiers import Tiers
from bot.slackapi import (
    METHODS,
    PER_CHANNEL,
    Method,
    bot_events,
    bot_scopes,
    budget_key,
    home_tab_enabled,
    read_manifest,
    slash_commands,
)

TEAM_ID = "T0SANDBOX"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0SANDBOX"
SLACKBOT = "USLACKBOT"
TRIGGER_TTL = 3.0
VIEW_STACK = 3  # views a modal's stack holds (views.push)
WORKSPACE_URL = "http://sandbox.slack.local/"
_HOLD: ContextVar[asyncio.Event | None] = ContextVar("held_requests", default=None)
APP_TOKEN_SCOPES: tuple[str, ...] = ("connections:write",)


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str = BOT_USER_ID
    deleted: bool = False
    ephemeral_to: str = ""  # user who alone sees it, for ephemeral messages
    metadata: dict[str, Any] | None = None
    thread_ts: str = ""  # the parent's ts, for a reply in a thread

    def public(self) -> dict[str, Any]:
        message = {
            "type": "message",
            "channel": self.channel,
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
            "user": self.user,
            "bot_id": BOT_ID,
        }
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        return message

    @property
    def is_reply(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts


@dataclass
class Fault:
    status: int
    error: str
    retry_after: int
    times: int
    channel: str = ""
    """Only calls whose `channel` argument is this one fail (empty: every call)."""


@dataclass
class SentRequest:
    """What the app answered to a request Slack sent it."""

    status: int
    body: str
    json: Any = None


@dataclass
class View:
    """A modal (`root` is the ID of the first view of its stack) or a Home tab."""

    id: str
    user: str
    view: dict[str, Any]
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    root: str = ""


@dataclass
class Workspace:
    users: dict[str, str] = field(default_factory=dict)  # id -> name
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    dms: dict[str, str] = field(default_factory=dict)  # user id -> D… channel
    messages: list[Message] = field(default_factory=list)
    views: dict[str, View] = field(default_factory=dict)
    homes: dict[str, View] = field(default_factory=dict)  # user id -> published Home tab
    triggers: dict[str, tuple[str, float]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # S… id -> user ids


class SlackStandin:
    """Start with `await start()`; point the app's `SLACK_API_URL` at `api_url` and set
    `app_url` to the app's `/slack/events` (not needed in Socket Mode)."""

    def __init__(
        self,
        *,
        signing_secret: str,
        bot_token: str,
        app_token: str = "",
        users: dict[str, str] | None = None,
        scopes: Iterable[str] | None = None,
        home_tab: bool | None = None,
        commands: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
        client_traces: Sequence[aiohttp.TraceConfig] = (),
        minute: float = 60.0,
        rates: Mapping[str, Rate] | None = None,
    ) -> None:
        """`scopes`: what the bot token is granted, `home_tab`: whether the app has a
        Home tab, `commands`: the app's slash commands, and `events`: the bot events it
        subscribes to (by default, what `manifest.yml` says, as a workspace installing the
        app grants it); `client_traces`: aiohttp
        tracing of the requests sent to the app (benchmarks time them on the wire);
        `minute`: how long a Slack minute of the rate limits lasts (see
        `bot.sandbox.tiers`), `rates` replacing some methods' rates."""
        self.tiers = Tiers(minute=minute, rates=rates)
        self.signing_secret = signing_secret
        self.client_traces = list(client_traces)
        self.bot_token = bot_token
        self.app_token = app_token
        given = (scopes, home_tab, commands, events)
        manifest = read_manifest() if any(g is None for g in given) else {}
        self.scopes = bot_scopes(manifest) if scopes is None else tuple(scopes)
        self.home_tab = home_tab_enabled(manifest) if home_tab is None else home_tab
        self.commands = slash_commands(manifest) if commands is None else tuple(commands)
        self.events = bot_events(manifest) if events is None else tuple(events)
        self.workspace = Workspace(users=dict(users or {}))
        self.workspace.channels["C0GENERAL"] = {
            "id": "C0GENERAL",
            "name": "general",
            "is_member": True,
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.answered_at: list[float] = []  # time.monotonic() of each answer
        self.responses: list[dict[str, Any]] = []
        self.app_url = ""
        self.trigger_ttl = TRIGGER_TTL  # tests shorten it to see expired triggers
        self._faults: dict[str, deque[Fault]] = {}
        self._seq = itertools.count(1)
        self._clock = time.time
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._response_urls: dict[str, tuple[str, str]] = {}
        self._listeners: set[Callable[[], None]] = set()
        self._hold = asyncio.Event()
        self.held = 0  # requests built and waiting for `release_requests()`
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/{method}", self._api),
            web.get("/api/{method}", self._api),
            web.post("/response/{id}", self._response_url),
            web.get("/socket", self._socket),
        ]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SlackStandin:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.attach(f"http://{host}:{bound[1]}")
        return self

    def attach(self, base_url: str) -> None:
        """Serve under `base_url` (when mounted into another aiohttp application)."""
        self.base_url = base_url.rstrip("/")
        self._http = self._http or aiohttp.ClientSession(trace_configs=self.client_traces)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test controls ---------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        error: str = "internal_error",
        retry_after: int = 1,
        times: int = 1,
        channel: str = "",
    ) -> None:
        """Make the next `times` calls of `method` fail (429 carries `Retry-After`); with
        `channel`, only its calls with that `channel` argument."""
        fault = Fault(status, error, retry_after, times, channel)
        self._faults.setdefault(method, deque()).append(fault)

    def heal(self, method: str | None = None) -> None:
        """Drop the failures still waiting for `method` (all methods when None)."""
        if method is None:
            self._faults.clear()
        else:
            self._faults.pop(method, None)

    def add_user(self, user_id: str, name: str) -> None:
        self.workspace.users[user_id] = name

    def add_channel(self, channel: str, name: str, *, member: bool) -> None:
        """A public channel; `member`: the bot is in it (else posting is `not_in_channel`)."""
        self.workspace.channels[channel] = {"id": channel, "name": name, "is_member": member}

    def add_usergroup(self, usergroup: str, users: list[str]) -> None:
        self.workspace.usergroups[usergroup] = list(users)

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        return [params for m, params in self.calls if m == method]

    def timeline(self, method: str) -> list[tuple[float, str]]:
        """When each call of `method` was answered, and how (`ok` or the error)."""
        return [
            (at, "ok" if body["ok"] else str(body.get("error")))
            for (m, body), at in zip(self.answers, self.answered_at, strict=True)
            if m == method
        ]

    def errors_of(self, method: str) -> list[str]:
        """The `error` of every failed answer to `method`, in order."""
        return [
            str(body.get("error")) for m, body in self.answers if m == method and not body["ok"]
        ]

    def dm_channel(self, user: str) -> str:
        if user not in self.workspace.dms:
            channel = "D" + uuid.uuid4().hex[:10].upper()
            self.workspace.dms[user] = channel
            self.workspace.channels[channel] = {"id": channel, "is_im": True, "user": user}
        return self.workspace.dms[user]

    def visible(self, user: str, channel: str | None = None) -> list[Message]:
        """Live messages `user` sees: their DM with the bot (or `channel`), ephemerals
        included."""
        channel = channel or self.dm_channel(user)
        return [
            m
            for m in self.workspace.messages
            if m.channel == channel
            and not m.deleted
            and (not m.ephemeral_to or m.ephemeral_to == user)
        ]

    def ephemerals(self, user: str) -> list[Message]:
        return [m for m in self.workspace.messages if m.ephemeral_to == user]

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever something visible changes; returns the unsubscriber."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    async def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    # --- the Web API -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method = METHODS.get(name)
        params, token = await _arguments(request, takes_json=method is not None and method.json)
        self.calls.append((name, params))
        status, body, headers = self._fault(name, params) or await self._answer(
            name, method, params, token
        )
        self.answers.append((name, body))
        self.answered_at.append(time.monotonic())
        return web.json_response(body, status=status, headers=headers)

    def _fault(
        self, name: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        faults = self._faults.get(name)
        fault = next(
            (f for f in faults or () if f.channel in ("", str(params.get("channel", "")))), None
        )
        if fault is None or faults is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            faults.remove(fault)
        headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
        error = "ratelimited" if fault.status == 429 else fault.error
        return fault.status, {"ok": False, "error": error}, headers

    async def _answer(
        self, name: str, method: Method | None, params: dict[str, Any], token: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Slack's checks in Slack's order: the method, the token, its scopes, the call."""
        handler = getattr(self, "_m_" + name.replace(".", "_"), None)
        if method is None or handler is None:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        if method.token == "app":
            expected, granted = self.app_token, APP_TOKEN_SCOPES
        else:
            expected, granted = self.bot_token, self.scopes
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != expected:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        needed = method.needs(str(params.get("channel", "")))
        headers = {"X-OAuth-Scopes": ",".join(granted), "X-Accepted-OAuth-Scopes": needed or ""}
        if needed is not None and needed not in granted:
            missing = {"needed": needed, "provided": ",".join(granted)}
            return 200, {"ok": False, "error": "missing_scope", **missing}, headers
        retry_after = self.tiers.take(budget_key(name, self._budget_channel(name, params)))
        if retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        try:
            result = await handler(params)
        except SlackError as e:
            return e.status, {"ok": False, "error": e.error, **e.extra}, headers
        except BlockKitError as e:
            return 200, e.body(), headers
        await self._notify()
        return 200, {"ok": True, **result}, headers

    def _budget_channel(self, name: str, params: dict[str, Any]) -> str:
        """The channel whose budget a per-channel method spends (a user ID means the DM)."""
        channel = str(params.get("channel", ""))
        if name in PER_CHANNEL and channel[:1] in ("U", "W") and channel in self.workspace.users:
            return self.dm_channel(channel)
        return channel

    def _ts(self) -> str:
        return f"{int(self._clock())}.{next(self._seq):06d}"

    def _channel(self, channel: str) -> str:
        """Resolve a `channel` argument as chat.postMessage does (user IDs open a DM)."""
        if channel.startswith(("U", "W")):
            if channel not in self.workspace.users:
                raise SlackError("channel_not_found")
            return self.dm_channel(channel)
        if channel not in self.workspace.channels:
            raise SlackError("channel_not_found")
        return channel

    def _content(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        text = str(params.get("text") or "")
        blocks = _json_field(params.get("blocks")) or []
        if not text and not blocks:
            raise SlackError("no_text")
        if len(text) > MESSAGE_TEXT:
            raise SlackError("msg_too_long")
        check_blocks(blocks)
        return text, blocks

    def _message(self, channel: str, ts: str) -> Message:
        for message in self.workspace.messages:
            if message.channel == channel and message.ts == ts and not message.ephemeral_to:
                if not message.deleted:
                    return message
                break
        raise SlackError("message_not_found")

    async def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": WORKSPACE_URL,
            "team": "Sandbox",
            "user": "approvals",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    async def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(params.get("channel", "")))
        if self.workspace.channels[channel].get("is_member") is False:
            raise SlackError("not_in_channel")
        text, blocks = self._content(params)
        metadata = _json_field(params.get("metadata"))
        if metadata is not None and (
            not isinstance(metadata, dict) or "event_type" not in metadata
        ):
            raise SlackError("invalid_metadata_format")
        message = Message(
            channel,
            self._ts(),
            text,
            blocks,
            metadata=metadata,
            thread_ts=str(params.get("thread_ts") or ""),
        )
        self.workspace.messages.append(message)
        return {"channel": channel, "ts": message.ts, "message": message.public()}

    def _history(self, params: dict[str, Any], found: list[Message]) -> dict[str, Any]:
        """One page of `found`: `limit` per page, `cursor` for the next."""
        limit = max(1, min(int(params.get("limit") or 100), 999))
        start = int(params.get("cursor") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = []
        for m in found[start : start + limit]:
            item = m.public()
            if with_metadata and m.metadata is not None:
                item["metadata"] = m.metadata
            messages.append(item)
        more = start + limit < len(found)
        return {
            "messages": messages,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _live(self, channel: str, oldest: float) -> list[Message]:
        return [
            m
            for m in self.workspace.messages
            if m.channel == channel
            and not m.deleted
            and not m.ephemeral_to
            and float(m.ts) > oldest
        ]

    async def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Newest first, without thread replies; `oldest` bounds it."""
        _required(params, "channel")
        channel = str(params["channel"])
        if channel not in self.workspace.channels:
            raise SlackError("channel_not_found")
        found = self._live(channel, float(params.get("oldest") or 0))
        return self._history(params, [m for m in reversed(found) if not m.is_reply])

    async def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread oldest first, its parent first; a message without replies alone."""
        _required(params, "channel", "ts")
        channel, ts = str(params["channel"]), str(params["ts"])
        if channel not in self.workspace.channels:
            raise SlackError("channel_not_found")
        found = self._live(channel, float(params.get("oldest") or 0))
        thread = [m for m in found if m.ts == ts or m.thread_ts == ts]
        if not any(m.ts == ts for m in thread):
            raise SlackError("thread_not_found")
        return self._history(params, thread)

    async def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(params.get("channel", "")))
        if self.workspace.channels[channel].get("is_member") is False:
            raise SlackError("not_in_channel")  # as for chat.postMessage
        user = str(params.get("user", ""))
        if user not in self.workspace.users:
            raise SlackError("user_not_found")
        text, blocks = self._content(params)
        message = Message(channel, self._ts(), text, blocks, ephemeral_to=user)
        self.workspace.messages.append(message)
        return {"message_ts": message.ts}

    async def _m_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        ts = str(params.get("ts", ""))
        if channel not in self.workspace.channels:
            raise SlackError("channel_not_found")
        self._message(channel, ts).deleted = True
        return {"channel": channel, "ts": ts}

    async def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        ts = str(params.get("ts", ""))
        text, blocks = self._content(params)
        message = self._message(channel, ts)
        message.text, message.blocks = text, blocks
        return {"channel": channel, "ts": ts, "text": text}

    async def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if channel not in self.workspace.channels:
            raise SlackError("channel_not_found")
        message = self._message(channel, str(params.get("message_ts", "")))
        link = f"{WORKSPACE_URL}archives/{channel}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    async def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users", "")).split(",")
        if len(users) != 1 or users[0] not in self.workspace.users:
            raise SlackError("user_not_found")
        return {"channel": {"id": self.dm_channel(users[0])}}

    async def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user", ""))
        if user not in self.workspace.users:
            raise SlackError("user_not_found")
        name = self.workspace.users[user]
        return {"user": {"id": user, "name": name, "real_name": name.title(), "team_id": TEAM_ID}}

    async def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        users = self.workspace.usergroups.get(str(params.get("usergroup", "")))
        if users is None:
            raise SlackError("no_such_subteam")
        return {"users": list(users)}

    def _take_trigger(self, params: dict[str, Any]) -> str:
        """The user a `trigger_id` was issued to; each works once, for `trigger_ttl`."""
        trigger = str(params.get("trigger_id", ""))
        if trigger not in self.workspace.triggers:
            raise SlackError("invalid_trigger_id")
        user, issued = self.workspace.triggers.pop(trigger)
        if time.monotonic() - issued > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        return user

    def _store_view(self, user: str, view: dict[str, Any], root: str = "") -> View:
        home = self.workspace.homes.get(user) if view.get("type") == "home" else None
        if home is not None:  # a user's Home is one view: published again, it keeps its id
            _replace(home, view)
            return home
        view_id = "V" + uuid.uuid4().hex[:10].upper()
        shown = {
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "root_view_id": root or view_id,
            "state": {"values": {}},
            "hash": uuid.uuid4().hex,
        }
        stored = View(view_id, user, shown, root=root or view_id)
        if view.get("type") == "home":
            self.workspace.homes[user] = stored
        else:
            self.workspace.views[view_id] = stored
        return stored

    async def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _json_field(params.get("view"))
        check_view(view)
        user = self._take_trigger(params)
        return {"view": self._store_view(user, view).view}

    async def _m_views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        """Onto the stack of the user's open modal (a new stack when none is open)."""
        view = _json_field(params.get("view"))
        check_view(view)
        user = self._take_trigger(params)
        opened = self.open_views(user)
        root = opened[-1].root if opened else ""
        if root and sum(v.root == root for v in opened) >= VIEW_STACK:
            raise SlackError("push_limit_reached")
        return {"view": self._store_view(user, view, root).view}

    async def _m_views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id, external = str(params.get("view_id", "")), str(params.get("external_id", ""))
        candidates = [*self.workspace.views.values(), *self.workspace.homes.values()]
        found = next(
            (
                v
                for v in candidates
                if not v.closed
                and (
                    (view_id and v.id == view_id)
                    or (external and v.view.get("external_id") == external)
                )
            ),
            None,
        )
        if found is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != found.view["hash"]:
            raise SlackError("hash_conflict")
        view = _json_field(params.get("view"))
        check_view(view, str(found.view.get("type")))
        _replace(found, view)
        return {"view": found.view}

    async def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user_id", ""))
        if user not in self.workspace.users:
            raise SlackError("user_not_found")
        if not self.home_tab:
            raise SlackError("not_enabled")
        home = self.workspace.homes.get(user)
        if home is not None and params.get("hash") and params["hash"] != home.view["hash"]:
            raise SlackError("hash_conflict")
        view = _json_field(params.get("view"))
        check_view(view, "home")
        return {"view": self._store_view(user, view).view}

    async def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.base_url.replace("http", "ws", 1) + "/socket"}

    # --- response_url ----------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await request.json()
        target = self._response_urls.get(request.match_info["id"])
        if target is None:
            return web.Response(status=404, text="no_such_response_url")
        user, channel = target
        info = {"u": user, "c": channel}
        self.responses.append({**payload, "user": user, "channel": channel})
        text, blocks = str(payload.get("text", "")), payload.get("blocks") or []
        try:
            check_blocks(blocks)
        except BlockKitError as e:
            return web.json_response(e.body())
        if payload.get("response_type") == "in_channel":
            self.workspace.messages.append(Message(info["c"], self._ts(), text, blocks))
        else:
            self.workspace.messages.append(
                Message(info["c"], self._ts(), text, blocks, ephemeral_to=info["u"])
            )
        await self._notify()
        return web.Response(text="ok")

    def response_url_for(self, user: str, channel: str) -> str:
        """A `response_url` as an interaction by `user` in `channel` carries."""
        token = uuid.uuid4().hex
        self._response_urls[token] = (user, channel)
        return f"{self.base_url}/response/{token}"

    # --- Slack's side: sending requests to the app -----------------------------------------

    def trigger(self, user: str) -> str:
        """A `trigger_id` as an interaction by `user` carries (valid for `trigger_ttl`)."""
        trigger = f"{next(self._seq)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"
        self.workspace.triggers[trigger] = (user, time.monotonic())
        return trigger

    def _user(self, user: str) -> dict[str, Any]:
        name = self.workspace.users.get(user, user)
        return {"id": user, "username": name, "name": name, "team_id": TEAM_ID}

    async def slash_command(
        self,
        user: str,
        text: str,
        *,
        command: str = "/approval",
        channel: str = "C0GENERAL",
        **send: Any,
    ) -> SentRequest:
        """Type a slash command as `user` in `channel`. Slack sends the app only its own
        commands: another is refused here (ValueError), as Slack's composer refuses it."""
        if command not in self.commands:
            raise ValueError(f"{command} is not a command of this app: {self.commands}")
        channel_name = self.workspace.channels.get(channel, {}).get("name", "directmessage")
        form = {
            "token": "sandbox-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": self.workspace.users.get(user, user),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_url_for(user, channel),
            "trigger_id": self.trigger(user),
        }
        answer = await self._send(urlencode(form), "slash_commands", form, **send)
        self._show_ack(answer, user, channel)
        return answer

    async def click(self, user: str, message: Message, action_id: str, **send: Any) -> SentRequest:
        """Click the button `action_id` of `message` as `user`."""
        try:
            element, block_id = _find_action(message.blocks, action_id)
        except ValueError:
            raise ValueError(f"message {message.ts} has no action {action_id!r}") from None
        payload = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "trigger_id": self.trigger(user),
            "team": {"id": TEAM_ID, "domain": "sandbox"},
            "channel": {"id": message.channel, "name": "directmessage"},
            "message": message.public(),
            "state": {"values": {}},
            "response_url": self.response_url_for(user, message.channel),
            "actions": [
                {
                    "type": element.get("type", "button"),
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": element.get("text", {}),
                    "value": element.get("value", ""),
                    "style": element.get("style"),
                    "action_ts": f"{self._clock():.6f}",
                }
            ],
        }
        answer = await self._send(
            urlencode({"payload": json.dumps(payload)}), "interactive", payload, **send
        )
        self._show_ack(answer, user, message.channel)
        return answer

    async def open_home(self, user: str, **send: Any) -> SentRequest | None:
        """`user` opens the app's Home tab: Slack sends `app_home_opened` (with the view
        last published for them, if any) when the app subscribes to it, and nothing when
        it does not (None). An app without a Home tab has none to open (ValueError)."""
        if not self.home_tab:
            raise ValueError("this app has no Home tab (features.app_home in the manifest)")
        if "app_home_opened" not in self.events:
            return None
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": self.dm_channel(user),
            "tab": "home",
            "event_ts": f"{self._clock():.6f}",
        }
        home = self.workspace.homes.get(user)
        if home is not None:
            event["view"] = home.view
        payload = {
            "token": "sandbox-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(self._clock()),
            "authorizations": [
                {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True},
            ],
        }
        return await self._send(
            json.dumps(payload), "events_api", payload, content_type="application/json", **send
        )

    def home(self, user: str) -> View | None:
        """The Home tab the app last published for `user`."""
        return self.workspace.homes.get(user)

    async def click_view(
        self, user: str, view: View, action_id: str, block_id: str = "", **send: Any
    ) -> SentRequest:
        """Click the button `action_id` (in block `block_id`, when several blocks have one)
        of a view: a modal or `user`'s Home tab. Slack sends the view, a `trigger_id`, and
        no `response_url` (a view is not a conversation: nothing can be said there
        ephemerally)."""
        element, found_block = _find_action(view.view.get("blocks", []), action_id, block_id)
        payload = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "container": {"type": "view", "view_id": view.id},
            "trigger_id": self.trigger(user),
            "team": {"id": TEAM_ID, "domain": "sandbox"},
            "view": view.view,
            "actions": [
                {
                    "type": element.get("type", "button"),
                    "action_id": action_id,
                    "block_id": found_block,
                    "text": element.get("text", {}),
                    "value": element.get("value", ""),
                    "style": element.get("style"),
                    "action_ts": f"{self._clock():.6f}",
                }
            ],
        }
        return await self._send(
            urlencode({"payload": json.dumps(payload)}), "interactive", payload, **send
        )

    def open_views(self, user: str) -> list[View]:
        return [v for v in self.workspace.views.values() if v.user == user and not v.closed]

    async def submit_view(
        self, user: str, view: View, values: dict[str, dict[str, Any]], **send: Any
    ) -> SentRequest:
        """Submit an open modal as a person would; `values` maps block_id -> action_id ->
        what they entered: text (a number as text too), an option's value, a user or
        conversation ID, a date `YYYY-MM-DD`, a time `HH:MM`, a Unix time for a date and
        time, a list for multi-selects and checkboxes.

        The inputs are checked as Slack's client checks them before sending anything (a
        required input left empty, a number out of its bounds, text over its length):
        those errors are shown on the view and the app hears nothing (status 0); an option
        the element does not offer cannot be chosen at all (`ValueError`). Every input
        block reaches the app, unfilled ones as Slack sends them (a null value). The app's
        answer is applied as Slack applies it: errors under the inputs, the modal replaced
        by its `update` view, or closed."""
        state, errors = submission_state(view.view, values)
        if errors:
            view.errors = errors
            await self._notify()
            return SentRequest(0, "", {"response_action": "errors", "errors": errors})
        submitted = {**view.view, "state": {"values": state}}
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "sandbox"},
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "trigger_id": self.trigger(user),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
        }
        answer = await self._send(
            urlencode({"payload": json.dumps(payload)}), "interactive", payload, **send
        )
        body = answer.json if isinstance(answer.json, dict) else {}
        action = body.get("response_action") if answer.status == 200 else None
        if action == "errors":
            view.errors = dict(body.get("errors") or {})
        elif action == "update":
            # Slack replaces the modal with the app's view, once it passes Block Kit's
            # checks; a view Slack would refuse leaves the modal as it was, and the person
            # reads that the app did not answer properly.
            try:
                check_view(body.get("view"))
            except BlockKitError as e:
                view.errors = {"": f"The app's answer was refused: {e.error}"}
            else:
                _replace(view, body["view"])
        elif answer.status == 200:
            view.closed = True
        await self._notify()
        return answer

    async def close_view(self, view: View) -> None:
        """Cancel a modal (the bot asked for no `view_closed` notification)."""
        view.closed = True
        await self._notify()

    async def post_as_user(self, user: str, channel: str, text: str) -> Message:
        """A person's own message in a conversation (the bot does not listen to these)."""
        message = Message(channel, self._ts(), text, [], user=user)
        self.workspace.messages.append(message)
        await self._notify()
        return message

    async def slackbot_says(self, user: str, channel: str, text: str) -> Message:
        """An ephemeral note from Slack itself, e.g. for an unknown slash command."""
        message = Message(channel, self._ts(), text, [], user=SLACKBOT, ephemeral_to=user)
        self.workspace.messages.append(message)
        await self._notify()
        return message

    def _show_ack(self, answer: SentRequest, user: str, channel: str) -> None:
        """Slack shows text in an acknowledgement to the user who acted, as ephemeral."""
        body = answer.json if isinstance(answer.json, dict) else None
        if answer.status == 200 and body and (body.get("text") or body.get("blocks")):
            self.workspace.messages.append(
                Message(
                    channel,
                    self._ts(),
                    str(body.get("text", "")),
                    body.get("blocks") or [],
                    ephemeral_to=user,
                )
            )
        elif answer.status == 200 and answer.body and not body:
            self.workspace.messages.append(
                Message(channel, self._ts(), answer.body, [], ephemeral_to=user)
            )

    def sign(self, body: str, timestamp: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        signature = SignatureVerifier(self.signing_secret).generate_signature(
            timestamp=timestamp, body=body
        )
        return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature or ""}

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Requests to the app sent by tasks created in this block wait, built and signed,
        until `release_requests()`: a burst then leaves all at once, and no response waits
        for this process to build the rest of the burst before it is read (as a load
        generator prepares its requests, and as Slack's timers run apart from its senders).
        Other tasks' requests go as usual."""
        self._hold = asyncio.Event()
        self.held = 0
        token = _HOLD.set(self._hold)
        try:
            yield
        finally:
            _HOLD.reset(token)

    def release_requests(self) -> None:
        self._hold.set()

    async def _send(
        self,
        body: str,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
        app_url: str | None = None,
        timeout: float = 10.0,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> SentRequest:
        """Deliver to the app (over the socket when one is connected); `app_url` sends to
        one of several app processes, as a load balancer would. Events come as JSON,
        interactivity and commands form-encoded, as Slack sends them."""
        if self._sockets and headers is None and timestamp is None and signature is None:
            return await self._send_envelope(envelope_type, payload)
        assert self._http is not None, "start() the stand-in first"
        signed = self.sign(body, timestamp)
        if signature is not None:
            signed["X-Slack-Signature"] = signature
        sent_headers = {
            "Content-Type": content_type,
            **(signed if headers is None else headers),
        }
        hold = _HOLD.get()
        if hold is not None and not hold.is_set():
            self.held += 1
            await hold.wait()
        async with self._http.post(
            app_url or self.app_url,
            data=body.encode(),
            headers=sent_headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            await self._notify()
            return SentRequest(response.status, text, parsed)

    # --- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "sandbox"},
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                future = self._pending_acks.pop(str(data.get("envelope_id")), None)
                if future is not None and not future.done():
                    future.set_result(data)
        finally:
            self._sockets.remove(ws)
        return ws

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    async def _send_envelope(
        self, envelope_type: str, payload: dict[str, Any], timeout: float = 10.0
    ) -> SentRequest:
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        await self._sockets[0].send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": envelope_type != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        ack = await asyncio.wait_for(future, timeout)
        await self._notify()
        body = ack.get("payload")
        return SentRequest(200, json.dumps(body) if body is not None else "", body)


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError("invalid_json") from None
    return value


async def _arguments(request: web.Request, *, takes_json: bool) -> tuple[dict[str, Any], str]:
    """Arguments and token as Slack reads them. A GET's arguments are its query string; a
    POST's are its query string and its body: form fields (the token may be one), or JSON
    for a method that takes JSON (its token in the Authorization header). A JSON body sent to
    a method that takes none is not read, and neither is a token in the query string (apps
    created since 2021 may not send one there): the call goes on as if they were not sent."""
    params: dict[str, Any] = {k: v for k, v in request.query.items() if k != "token"}
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if request.method != "POST":
        return params, token
    if request.content_type == "application/json":
        body = await request.json() if takes_json else None
        if isinstance(body, dict):
            params.update({k: v for k, v in body.items() if k != "token"})
        return params, token
    form = dict(parse_qsl(await request.text(), keep_blank_values=True))
    token = token or form.get("token", "")
    params.update({k: v for k, v in form.items() if k != "token"})
    return params, token


def _replace(found: View, view: dict[str, Any]) -> None:
    """`found` shows `view` now: same id, a new hash, its inputs empty (as Slack does)."""
    found.view = {
        **view,
        **{k: found.view[k] for k in ("id", "team_id", "app_id", "bot_id", "root_view_id")},
        "state": {"values": {}},
        "hash": uuid.uuid4().hex,
    }
    found.errors = {}


def _required(params: dict[str, Any], *names: str) -> None:
    """An absent required argument, as Slack answers it (one present but empty is the
    method's own error, e.g. `channel_not_found`)."""
    missing = [n for n in names if n not in params]
    if missing:
        messages = [f"[ERROR] missing required field: {n}" for n in missing]
        raise SlackError("invalid_arguments", response_metadata={"messages": messages})


def _find_action(
    blocks: list[dict[str, Any]], action_id: str, block_id: str = ""
) -> tuple[dict[str, Any], str]:
    for block in blocks:
        if block.get("type") == "actions" and block_id in ("", block.get("block_id")):
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return element, str(block.get("block_id", ""))
    where = f" in block {block_id!r}" if block_id else ""
    raise ValueError(f"no action {action_id!r}{where}")
