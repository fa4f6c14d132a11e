"""The Slack side of `WaitForUserAction` and `WaitForButton`: post their interactive DMs,
delete them later;
and `Posts`, the keyed, at-most-once posting both this manager and the bot's steps use
(DMs, and channel posts from steps: see `Posts.post_once`).

Posting to a user ID opens the DM and returns its `D…` conversation ID, which is what
`chat.delete` needs, so setup keeps it. Slack spends no call on anything else unless an
earlier attempt may have posted already:
- every message carries a key in its metadata. Only when an earlier attempt may have
  posted it (a setup retried after a crash, `request.setup_attempt > 1`; a step whose
  earlier run began posting and never recorded the result) is the DM's history searched
  for it (`conversations.history`, which needs `im:history`), so nobody gets the same
  message twice;
- a step's posts are recorded as engine effects: begun before the call, its channel and
  `ts` after. A step that runs again finds the message without asking Slack, and searches
  only when the earlier run died mid-call;
- each user's DM channel is recorded the first time a post returns it, so a search needs
  `conversations.open` at most once per user, in any process;
- a failure part-way through a setup deletes what this attempt posted before raising;
- teardown treats an already deleted message as deleted, and when a setup began but never
  recorded what it posted, searches for the messages by their keys and deletes them.
Teardowns are background work for the rate limiter (bot.ratelimit): a person waits for
posts, nobody waits for a deletion.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from callbacks.priority import background
from workflows import DB, CallbackRequest, Engine, RetryLater

log = logging.getLogger("callbacks.slack")

GONE = frozenset({"message_not_found", "channel_not_found", "cant_delete_message"})
EVENT_TYPE = "approval_bot_message"


class Interactive(Protocol):
    """A wait whose people get an interactive DM (`WaitForUserAction`, `WaitForButton`)."""

    @property
    def recipients(self) -> list[str]: ...


Render = Callable[[CallbackRequest, Any], dict[str, Any]]
"""Builds the message (`text` and `blocks`) each recipient gets; the bot provides it."""


class Posts:
    """Posting DMs (and steps' channel posts) at most once by key, finding DMs again,
    deleting them."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._db: DB | None = None
        self._dms: dict[str, str] = {}  # user -> D… channel, as recorded

    def attach(self, db: DB) -> None:
        self._db = db

    @property
    def db(self) -> DB:
        if self._db is None:
            raise RuntimeError("Posts is not attached to the engine's database")
        return self._db

    async def dm_channel(self, user: str) -> str:
        """The DM with `user`: recorded, or opened once (`conversations.open`)."""
        channel = self._dms.get(user) or await self.db.effect(_dm_key(user))
        if not channel:
            opened = await self.client.conversations_open(users=user)
            channel = str(opened["channel"]["id"])
            await self._remember_dm(user, channel)
        self._dms[user] = str(channel)
        return str(channel)

    async def _remember_dm(self, user: str, channel: str) -> None:
        if self._dms.get(user) == channel:
            return
        if await self.db.effect(_dm_key(user)) != channel:
            await self.db.record_effect(_dm_key(user), channel)
        self._dms[user] = channel

    async def find(self, user: str, key: str, since: datetime | None) -> dict[str, str] | None:
        """The bot's message keyed `key` in its DM with `user`, posted after `since`."""
        channel = await self.dm_channel(user)
        oldest = "0" if since is None else f"{(since - timedelta(minutes=1)).timestamp():.6f}"
        cursor = ""
        while True:
            page = await self.client.conversations_history(
                channel=channel,
                oldest=oldest,
                limit=200,
                include_all_metadata=True,
                cursor=cursor or None,
            )
            messages: list[dict[str, Any]] = page.get("messages", [])
            for message in messages:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("key") == key:
                    return {"user": user, "channel": channel, "ts": str(message["ts"])}
            cursor = (page.get("response_metadata") or {}).get("next_cursor", "")
            if not page.get("has_more") or not cursor:
                return None

    async def post(
        self,
        user: str,
        key: str,
        payload: dict[str, Any],
        *,
        maybe_posted: bool,
        since: datetime | None,
    ) -> dict[str, str]:
        """DM `payload` to `user`, unless `maybe_posted` and a message keyed `key` is
        already there."""
        if maybe_posted:
            found = await self.find(user, key, since)
            if found is not None:
                return found
        response = await self.client.chat_postMessage(
            channel=user,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": key}},
            **payload,
        )
        message = {"user": user, "channel": str(response["channel"]), "ts": str(response["ts"])}
        await self._remember_dm(user, message["channel"])
        return message

    async def post_once(
        self,
        workflow_id: str,
        to: str,
        key: str,
        payload: dict[str, Any],
        *,
        since: datetime | None = None,
    ) -> dict[str, str]:
        """From a step (which may run again): post at most once, recorded as an effect.

        `to` is a user (their DM) or a channel. A DM whose earlier run died mid-call is
        searched for in the DM's history posted after `since` (default: when that run
        began). A channel post is not searched for: that would need the channel's history
        scope (`channels:history`, `groups:history`), and Slack has no idempotency key, so
        only a run that died during the very call to Slack may post to a channel twice."""
        effect_key = f"slack:post:{key}"
        prior = await self.db.effect(effect_key)
        if isinstance(prior, dict) and prior.get("ts"):
            return {k: str(v) for k, v in prior.items()}  # posted by an earlier run
        begun_before = isinstance(prior, dict) and bool(prior.get("begun"))
        if not begun_before:
            begun = {"begun": True, "at": datetime.now(UTC).timestamp()}
            await self.db.record_effect(effect_key, begun, workflow_id)
        elif since is None and isinstance(prior, dict) and prior.get("at"):
            since = datetime.fromtimestamp(float(prior["at"]), UTC)
        try:
            if is_user(to):
                message = await self.post(to, key, payload, maybe_posted=begun_before, since=since)
            else:
                message = await self.post_to_channel(to, key, payload)
        except RetryLater:
            # Put off for its rate budget before anything was sent: nothing can have been
            # posted, so the next attempt need not search for it.
            if not begun_before:
                await self.db.record_effect(effect_key, {"begun": False}, workflow_id)
            raise
        await self.db.record_effect(effect_key, message, workflow_id)
        return message

    async def post_to_channel(
        self, channel: str, key: str, payload: dict[str, Any]
    ) -> dict[str, str]:
        """Post `payload` in `channel` (the bot must be a member: else `not_in_channel`)."""
        response = await self.client.chat_postMessage(
            channel=channel,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": key}},
            **payload,
        )
        return {"channel": str(response["channel"]), "ts": str(response["ts"])}

    async def delete(self, posted: list[dict[str, str]], workflow_id: str | None = None) -> None:
        """Delete the messages, as background work. Each deletion is recorded, so a
        teardown that runs again (the rest of it was put off for its rate budget) spends
        no call of `chat.delete`, the scarcest budget, on a message already gone."""
        with background():
            for message in posted:
                key = f"slack:deleted:{message['channel']}:{message['ts']}"
                if await self.db.effect(key):
                    continue
                try:
                    await self.client.chat_delete(channel=message["channel"], ts=message["ts"])
                except SlackApiError as e:
                    if e.response.get("error") not in GONE:
                        raise
                await self.db.record_effect(key, True, workflow_id)


def is_user(conversation: str) -> bool:
    """Whether a `channel` argument names a user (so the post goes to their DM)."""
    return conversation[:1] in ("U", "W")


def _dm_key(user: str) -> str:
    return f"slack:dm:{user}"


class SlackActionManager:
    """Posts each recipient's interactive DM in setup and deletes them in teardown."""

    def __init__(self, posts: Posts, render: Render) -> None:
        self.posts = posts
        self.render = render

    def attach(self, engine: Engine) -> None:
        self.posts.attach(engine.db)

    async def setup(self, request: CallbackRequest, handler: Interactive) -> str:
        posted: list[dict[str, str]] = []
        payload = self.render(request, handler)
        try:
            for user in handler.recipients:
                posted.append(
                    await self.posts.post(
                        user,
                        _key(request, user),
                        payload,
                        maybe_posted=request.setup_attempt > 1,
                        since=request.waiting_since,
                    )
                )
        except Exception:
            await self.posts.delete(posted, request.workflow_id)
            raise
        return json.dumps({"messages": posted})

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if request.setup_data:
            await self.posts.delete(
                json.loads(request.setup_data).get("messages", []), request.workflow_id
            )
            await self.keep_record(request, handler, handled)
        elif request.setup_attempt > 0 and hasattr(handler, "recipients"):
            # A setup began but never recorded what it posted (the process died, or the
            # wait ended first): find those messages by their keys.
            with background():
                found = [
                    await self.posts.find(user, _key(request, user), request.waiting_since)
                    for user in handler.recipients
                ]
            await self.posts.delete([m for m in found if m is not None], request.workflow_id)
        closed = getattr(handler, "closed", None)
        if closed is not None:
            with background():
                await closed()

    async def keep_record(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        """Leave each recipient the record `handler.record` makes, once (by thread: one
        record per person per approval), as background work."""
        make = getattr(handler, "record", None)
        if make is None:
            return
        with background():
            for user in handler.recipients:
                payload = make(user, handled)
                if payload is not None:
                    key = record_key(request.workflow_id, request.thread_id)
                    kept = await self.posts.post_once(request.workflow_id, user, key, payload)
                    await self.posts.db.record_effect(
                        shown_key(kept["channel"], kept["ts"]),
                        shown_digest(payload),
                        request.workflow_id,
                    )


def shown_key(channel: str, ts: str) -> str:
    """The effect that holds what a message shows (its payload's digest), so showing the
    same again asks Slack nothing."""
    return f"slack:shown:{channel}:{ts}"


def shown_digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def record_key(workflow_id: str, thread_id: str) -> str:
    """The key of the record kept by the person a thread asked."""
    return f"{workflow_id}:record:{thread_id}"


def _key(request: CallbackRequest, user: str) -> str:
    return f"{request.workflow_id}:{request.thread_id}:{request.name}:{request.pc}:{user}"
