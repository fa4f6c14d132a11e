"""The Slack side of `WaitForUserAction`: post the Approve / Deny DMs, delete them later.

Posting to a user ID opens the DM and returns its `D…` conversation ID, which is what
`chat.delete` needs, so setup keeps it. Both calls are idempotent:
- every message carries a key in its metadata; a setup that runs again after a crash
  (`request.setup_attempt > 1`) first looks for messages it already posted and reuses them,
  so nobody gets the same request twice and no message is left behind undeleted;
- a failure part-way deletes what this attempt posted before raising;
- teardown treats an already deleted message as deleted, and when a setup began but never
  recorded what it posted, looks the messages up by their keys and deletes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from callbacks.user_action import WaitForUserAction
from workflows import CallbackRequest

log = logging.getLogger("callbacks.slack")

GONE = frozenset({"message_not_found", "channel_not_found", "cant_delete_message"})
EVENT_TYPE = "approval_bot_message"

Render = Callable[[CallbackRequest, WaitForUserAction], dict[str, Any]]
"""Builds the message (`text` and `blocks`) an approver gets; the bot provides it."""


async def find_posted(
    client: AsyncWebClient, user: str, key: str, since: datetime | None
) -> dict[str, str] | None:
    """The bot's message keyed `key` in its DM with `user`, posted after `since`."""
    opened = await client.conversations_open(users=user)
    channel = str(opened["channel"]["id"])
    oldest = "0" if since is None else f"{(since - timedelta(minutes=1)).timestamp():.6f}"
    cursor = ""
    while True:
        page = await client.conversations_history(
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


async def post_once(
    client: AsyncWebClient,
    user: str,
    key: str,
    payload: dict[str, Any],
    *,
    look_first: bool,
    since: datetime | None,
) -> dict[str, str]:
    """DM `payload` to `user` unless a message with `key` is already there (checked only
    when `look_first`, i.e. when an earlier attempt may have posted it)."""
    if look_first:
        found = await find_posted(client, user, key, since)
        if found is not None:
            return found
    response = await client.chat_postMessage(
        channel=user, metadata={"event_type": EVENT_TYPE, "event_payload": {"key": key}}, **payload
    )
    return {"user": user, "channel": str(response["channel"]), "ts": str(response["ts"])}


class SlackActionManager:
    def __init__(self, client: AsyncWebClient, render: Render) -> None:
        self.client = client
        self.render = render

    async def setup(self, request: CallbackRequest, handler: WaitForUserAction) -> str:
        posted: list[dict[str, str]] = []
        payload = self.render(request, handler)
        base = f"{request.workflow_id}:{request.thread_id}:{request.name}:{request.pc}"
        try:
            for user in handler.approvers:
                posted.append(
                    await post_once(
                        self.client,
                        user,
                        f"{base}:{user}",
                        payload,
                        look_first=request.setup_attempt > 1,
                        since=request.waiting_since,
                    )
                )
        except Exception:
            await self._delete(posted)
            raise
        return json.dumps({"messages": posted})

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if request.setup_data:
            await self._delete(json.loads(request.setup_data).get("messages", []))
        elif request.setup_attempt > 0 and isinstance(handler, WaitForUserAction):
            # A setup began but never recorded what it posted (the process died, or the
            # wait ended first): find those messages by their keys.
            base = f"{request.workflow_id}:{request.thread_id}:{request.name}:{request.pc}"
            found = [
                await find_posted(self.client, user, f"{base}:{user}", request.waiting_since)
                for user in handler.approvers
            ]
            await self._delete([m for m in found if m is not None])

    async def _delete(self, posted: list[dict[str, str]]) -> None:
        for message in posted:
            try:
                await self.client.chat_delete(channel=message["channel"], ts=message["ts"])
            except SlackApiError as e:
                if e.response.get("error") not in GONE:
                    raise
