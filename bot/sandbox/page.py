"""The sandbox: the real bot, a built-in Slack and a page that looks like Slack, in one
process on one port.

Routes on that port:
- `/slack/events`, `/healthz`: the real bot (the same Bolt app, engine and resumer as
  production, on its own SQLite file by default);
- `/api/*`, `/response/*`, `/socket`: the built-in Slack (`SlackStandin`) the bot talks to;
- `/`, `/static/*`, `/sandbox/api/*`: the page, and the JSON API and server-sent events it
  uses to act as a person (type commands, click buttons, submit modals) and to watch;
- `/sandbox/webhooks/*`: the built-in webhook receiver (bot.sandbox.receiver), where
  webhook steps deliver unless a blueprint names a URL of its own (`WEBHOOK_RECEIVER`).

The blueprints are those `BLUEPRINTS` names, as for `approval-bot run`; the built-in Slack
is the app installed from their manifest (bot.manifest): it knows their slash commands and
grants their scopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import views
from bot.loading import load_blueprints
from bot.manifest import manifest
from bot.sandbox.memory import SlackMemory
from bot.sandbox.receiver import WebhookReceiver
from bot.sandbox.slack import BOT_USER_ID, SLACKBOT, Message, SlackStandin
from bot.server import web_app
from bot.service import Service, build
from bot.settings import Settings
from bot.slackapi import bot_events, bot_scopes, home_tab_enabled, slash_commands
from workflows.store import CorruptRecord, SQLStore
from workflows.types import Record

log = logging.getLogger("bot.sandbox")

STATIC = Path(__file__).parent / "static"
HOME = "home"  # the sidebar's entry for the app's Home tab
BOT_TOKEN = "xoxb-sandbox"

USERS = [
    ("U0RITA", "rita", "requester"),
    ("U0ALICE", "alice", "approver"),
    ("U0BOB", "bob", "approver"),
    ("U0CAROL", "carol", "approver"),
    ("U0EVE", "eve", "stranger"),
]
_MENTION = re.compile(r"(?<![\w<])@([a-z0-9._-]+)", re.IGNORECASE)


def escape_mentions(text: str, users: dict[str, str]) -> str:
    """`@alice` -> `<@U0ALICE|alice>`, as Slack does for commands with escaping on. Names
    that are no user stay plain text, as in Slack."""
    by_name = {name.lower(): uid for uid, name in users.items()}

    def replace(match: re.Match[str]) -> str:
        uid = by_name.get(match.group(1).lower())
        return f"<@{uid}|{users[uid]}>" if uid else match.group(0)

    return _MENTION.sub(replace, text)


@dataclass
class Sandbox:
    slack: SlackStandin
    service: Service
    url: str
    runner: web.AppRunner
    memory: SlackMemory
    restored: int
    """How many messages of an earlier run the built-in Slack brought back."""
    receiver: WebhookReceiver

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.service.close()
        await self.memory.close()
        await self.slack.close()


@contextlib.asynccontextmanager
async def running_sandbox(
    host: str = "127.0.0.1",
    port: int = 3000,
    database_url: str = "sqlite:///sandbox.db",
    sweep_interval: float = 0.5,
    blueprints: str | None = None,
) -> AsyncIterator[Sandbox]:
    """`blueprints`: the BLUEPRINTS value (default: the setting's, from the environment or
    `.env`)."""
    signing_secret = secrets.token_hex(16)
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=signing_secret,
        slack_app_token="",
        database_url=database_url,
        port=0,
    )
    if blueprints is not None:
        settings = settings.model_copy(update={"blueprints": blueprints})
    loaded = load_blueprints(settings.blueprints)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    base = f"http://{host}:{sock.getsockname()[1]}"
    settings = settings.model_copy(
        update={
            "slack_api_url": f"{base}/api/",
            # Webhook steps sign with a secret the receiver knows, and deliver to it.
            "webhook_secret": settings.webhook_secret or secrets.token_hex(16),
            "webhook_receiver": f"{base}/sandbox/webhooks/",
        }
    )
    receiver = WebhookReceiver(settings.webhook_secret)
    installed = manifest(loaded)
    slack = SlackStandin(
        signing_secret=signing_secret,
        bot_token=BOT_TOKEN,
        users={uid: name for uid, name, _ in USERS},
        scopes=bot_scopes(installed),
        home_tab=home_tab_enabled(installed),
        commands=slash_commands(installed),
        events=bot_events(installed),
    )
    slack.attach(base)
    slack.app_url = f"{base}/slack/events"
    memory = SlackMemory(slack, database_url)
    restored = await memory.restore()
    memory.watch()
    service = build(settings, sweep_interval=sweep_interval, blueprints=loaded)
    app = web_app(service)
    app.add_routes(slack.routes())
    app.add_routes(receiver.routes())
    page = PageApi(slack, service, receiver)
    app.add_routes(page.routes())
    app.on_shutdown.append(page.shutdown)
    await service.start()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    sandbox = Sandbox(slack, service, base, runner, memory, restored, receiver)
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def serve_sandbox(host: str, port: int, database_url: str) -> None:
    """Run until SIGINT/SIGTERM, printing the page's address."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_sandbox(host, port, database_url) as sandbox:
        kept = (
            f"; {sandbox.restored} messages of the last run are back, so its requests can "
            "still be answered (--fresh starts empty)"
            if sandbox.restored
            else ""
        )
        print(
            f"\nApprovals sandbox: open {sandbox.url}/ in your browser "
            f"(workflows and messages in {database_url}{kept}; Ctrl-C stops)\n",
            flush=True,
        )
        await stop.wait()


def forget(database_url: str) -> None:
    """Remove the sandbox's SQLite database (workflows and the built-in Slack's messages)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        raise ValueError("--fresh removes a SQLite file; empty other databases yourself")
    for suffix in ("", "-wal", "-shm"):
        Path(url.database + suffix).unlink(missing_ok=True)
    print(f"Starting fresh: removed {url.database}", flush=True)


class PageApi:
    def __init__(self, slack: SlackStandin, service: Service, receiver: WebhookReceiver) -> None:
        self.slack = slack
        self.service = service
        self.receiver = receiver
        self._streams: set[asyncio.Task[Any]] = set()

    async def shutdown(self, app: web.Application) -> None:
        """End the event streams, which would otherwise hold the server open."""
        for task in list(self._streams):
            task.cancel()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.index),
            web.static("/static", STATIC),
            web.get("/sandbox/api/state", self.state),
            web.post("/sandbox/api/send", self.send),
            web.post("/sandbox/api/click", self.click),
            web.post("/sandbox/api/home", self.open_home),
            web.post("/sandbox/api/submit", self.submit),
            web.post("/sandbox/api/cancel", self.cancel),
            web.get("/sandbox/api/events", self.events),
        ]

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    # --- reading ---------------------------------------------------------------------------

    def _user(self, request: web.Request, body: dict[str, Any] | None = None) -> str:
        user = str((body or {}).get("user") or request.query.get("user") or USERS[0][0])
        if user not in self.slack.workspace.users:
            raise web.HTTPBadRequest(
                text=json.dumps({"ok": False, "error": "unknown user"}),
                content_type="application/json",
            )
        return user

    async def state(self, request: web.Request) -> web.Response:
        user = self._user(request)
        # Unlike Slack, the sandbox lists every person's DM with the bot, so an author can
        # watch (and, acting as someone else, poke at) all sides of a request.
        conversations = [
            {"id": "C0GENERAL", "name": "#general", "kind": "channel"},
            # The app, as Slack lists it under Apps: its Home tab, for the person acting.
            *([{"id": HOME, "name": "approvals", "kind": "home"}] if self.slack.home_tab else []),
        ] + [
            {
                "id": self.slack.dm_channel(uid),
                "name": f"approvals ↔ {name}",
                "kind": "dm",
                "with": uid,
            }
            for uid, name, _ in USERS
        ]
        views = [
            {"id": v.id, "view": v.view, "errors": v.errors} for v in self.slack.open_views(user)
        ]
        home = self.slack.home(user)
        return web.json_response(
            {
                "me": user,
                "users": [{"id": uid, "name": name, "role": role} for uid, name, role in USERS],
                "bot": {"id": BOT_USER_ID, "name": "approvals"},
                "commands": [
                    {"command": each.name, "usage": each.usage, "description": each.description}
                    for each in self.service.blueprints.launches
                ],
                "conversations": conversations,
                "messages": {
                    c["id"]: self._messages(user, c["id"]) for c in conversations if c["id"] != HOME
                },
                "home": None if home is None else {"id": home.id, "view": home.view},
                "views": views,
                "workflows": await self._workflows(),
                "webhooks": self.receiver.as_json(),
                "webhooks_failing": self.receiver.failing,
            },
            dumps=_dumps,
        )

    def _messages(self, user: str, channel: str) -> list[dict[str, Any]]:
        """What `user` sees in `channel`, oldest first, replies included (the page shows them
        in their thread). As Slack's history does, a parent carries its thread's count, who
        replied and the latest reply, and a deleted one with replies stays as a tombstone."""
        shown = self.slack.visible(user, channel)
        replies: dict[str, list[Message]] = {}
        for m in shown:
            if m.is_reply:
                replies.setdefault(m.thread_ts, []).append(m)
        return [
            self._message(m, replies.get(m.ts, []))
            for m in self.slack.workspace.messages
            if m.channel == channel
            and (not m.ephemeral_to or m.ephemeral_to == user)
            and (not m.deleted or (not m.is_reply and m.ts in replies))
        ]

    def _message(self, m: Message, replies: list[Message]) -> dict[str, Any]:
        names = {**self.slack.workspace.users, BOT_USER_ID: "approvals", SLACKBOT: "Slackbot"}
        shown: dict[str, Any] = {
            "ts": m.ts,
            "channel": m.channel,
            "user": m.user,
            "user_name": names.get(m.user, m.user),
            "text": m.text,
            "blocks": m.blocks,
            "ephemeral": bool(m.ephemeral_to),
            "from_bot": m.user == BOT_USER_ID,
            # A reply's parent; a parent's own ts once it has replies, as in Slack.
            "thread_ts": m.thread_ts or (m.ts if replies else ""),
        }
        if m.deleted:
            shown.update(text="This message was deleted.", blocks=[], deleted=True)
        if replies:
            shown.update(
                reply_count=len(replies),
                reply_users=list(dict.fromkeys(r.user for r in replies)),
                latest_reply=replies[-1].ts,
            )
        return shown

    @property
    def _store(self) -> SQLStore:
        store = self.service.engine.db
        assert isinstance(store, SQLStore), "the sandbox keeps its workflows in SQL"
        return store

    async def _workflows(self) -> list[dict[str, Any]]:
        result = []
        for r in await self._store.listing(limit=50, newest_first=True):
            history = [
                {k: h[k] for k in ("kind", "name", "actor", "input", "created_at")}
                for h in await self._store.history(r.id)
            ]
            if isinstance(r, CorruptRecord):  # listed with what is wrong, never hidden
                result.append(
                    {
                        "id": r.id,
                        "type": r.type,
                        "status": r.status,
                        "outcome": "corrupt",
                        "summary": None,
                        "problem": r.problem,
                        "error": r.error,
                        "created_at": r.created_at,
                        "threads": [],
                        "history": history,
                    }
                )
                continue
            result.append(
                {
                    "id": r.id,
                    "type": r.type,
                    "status": r.status,
                    **self._summary(r),
                    "error": r.error,
                    "output": r.output,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                    "threads": [
                        {
                            "id": t.id,
                            "step": t.step,
                            "status": t.status,
                            "events": [
                                {
                                    "name": e.name,
                                    "type": e.type,
                                    "status": e.status,
                                    "error": e.error,
                                }
                                for e in t.events
                            ],
                        }
                        for t in r.state.threads
                    ],
                    "history": history,
                }
            )
        return result

    def _summary(self, record: Record) -> dict[str, Any]:
        """What the panel leads with: the request, who asked, who answered, the outcome
        (as the operator CLI says them, bot.views)."""
        shown = views.view(record, self.service.engine.workflows)
        told = shown.summary
        return {
            "outcome": shown.status,
            "summary": None
            if told is None
            else {"title": told.title, "started_by": told.started_by, "people": told.people},
            "problem": shown.problem,
        }

    # --- acting as a person ----------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='{"ok": false, "error": "malformed JSON"}', content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"ok": false, "error": "expected an object"}', content_type="application/json"
            )
        return body

    async def send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user = self._user(request, body)
        channel = str(body.get("channel") or "C0GENERAL")
        text = str(body.get("text") or "").strip()
        if channel not in self.slack.workspace.channels:
            return _error("unknown conversation")
        if not text:
            return _error("nothing to send")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command not in self.slack.commands:
                await self.slack.slackbot_says(
                    user,
                    channel,
                    (
                        f"`{command}` is not a valid command. In Slack, all messages that start "
                        'with the "/" character are interpreted as commands.'
                    ),
                )
                return web.json_response({"ok": True})
            escaped = escape_mentions(rest.strip(), self.slack.workspace.users)
            answer = await self.slack.slash_command(user, escaped, command=command, channel=channel)
            if answer.status != 200:
                await self.slack.slackbot_says(
                    user, channel, (f'`{command}` failed with the error "dispatch_failed"')
                )
            return web.json_response({"ok": True})
        await self.slack.post_as_user(
            user, channel, escape_mentions(text, self.slack.workspace.users)
        )
        return web.json_response({"ok": True})

    async def click(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user = self._user(request, body)
        if body.get("view_id"):
            return await self._click_view(user, body)
        channel = str(body.get("channel", ""))
        message = next(
            (
                m
                for m in self.slack.workspace.messages
                if m.channel == channel
                and m.ts == body.get("ts")
                and not m.deleted
                and m.ephemeral_to in ("", user)
            ),
            None,
        )
        if message is None:
            return _error("that message is gone")
        try:
            await self.slack.click(user, message, str(body.get("action_id", "")))
        except ValueError:
            return _error("that message has no such button")
        return web.json_response({"ok": True})

    async def _click_view(self, user: str, body: dict[str, Any]) -> web.Response:
        """A button of the acting person's Home tab (or of their open modal)."""
        home = self.slack.home(user)
        views = ([home] if home is not None else []) + self.slack.open_views(user)
        view = next((v for v in views if v.id == body.get("view_id")), None)
        if view is None:
            return _error("that view is gone")
        try:
            await self.slack.click_view(
                user, view, str(body.get("action_id", "")), str(body.get("block_id", ""))
            )
        except ValueError:
            return _error("that view has no such button")
        return web.json_response({"ok": True})

    async def open_home(self, request: web.Request) -> web.Response:
        """The acting person opens the app's Home tab: Slack tells the app
        (`app_home_opened`), which publishes it."""
        user = self._user(request, await self._body(request))
        try:
            await self.slack.open_home(user)
        except ValueError as e:
            return _error(str(e))
        return web.json_response({"ok": True})

    async def submit(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user = self._user(request, body)
        view = self._view(user, body)
        values = body.get("values")
        if not isinstance(values, dict) or not all(
            isinstance(v, dict) and all(_entered(t) for t in v.values()) for v in values.values()
        ):
            return _error("values must map block ids to action ids to text or lists of text")
        try:
            answer = await self.slack.submit_view(user, view, values)
        except ValueError as e:  # no such input or option: the page sent what no one can
            return _error(str(e))
        if view.errors and not view.closed:
            return web.json_response({"ok": True, "errors": view.errors})
        if answer.status != 200:
            return _error("the app did not accept the form")
        return web.json_response({"ok": True})

    async def cancel(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        await self.slack.close_view(self._view(self._user(request, body), body))
        return web.json_response({"ok": True})

    def _view(self, user: str, body: dict[str, Any]) -> Any:
        for view in self.slack.open_views(user):
            if view.id == body.get("view_id"):
                return view
        raise web.HTTPNotFound(
            text='{"ok": false, "error": "no such open view"}', content_type="application/json"
        )

    # --- live updates ----------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one `changed` whenever Slack or a workflow changed."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        changed = asyncio.Event()
        unsubscribes = [self.slack.subscribe(changed.set), self.receiver.subscribe(changed.set)]
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        seen = await self._fingerprint()
        try:
            await response.write(b'data: {"type": "changed"}\n\n')
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.5)
                now = await self._fingerprint()
                if changed.is_set() or now != seen:
                    changed.clear()
                    seen = now
                    await response.write(b'data: {"type": "changed"}\n\n')
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            for unsubscribe in unsubscribes:
                unsubscribe()
            self._streams.discard(task)
        return response

    async def _fingerprint(self) -> tuple[tuple[str, object], ...]:
        records = await self._store.listing(limit=50, newest_first=True)
        return tuple(
            (r.id, r.updated_at if isinstance(r, CorruptRecord) else r.version) for r in records
        )


def _entered(value: object) -> bool:
    """What a person can enter in one input: text, or the values chosen in a multi-select
    or checkboxes."""
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


def _error(message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message})


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
