"""The Slack side of `WaitForUserAction`: post the Approve / Deny DMs, delete them later.

Posting to a user ID opens the DM and returns its `D…` conversation ID, which is what
`chat.delete` needs, so setup keeps it. Both calls are idempotent: setup posts nothing
twice within one attempt (a failure part-way deletes what it posted before raising, so the
retry starts clean) and teardown treats an already deleted message as deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from callbacks.user_action import WaitForUserAction
from workflows import CallbackRequest

log = logging.getLogger("callbacks.slack")

Render = Callable[[CallbackRequest, WaitForUserAction], dict[str, Any]]
"""Builds the message (`text` and `blocks`) an approver gets; the bot provides it."""

GONE = frozenset({"message_not_found", "channel_not_found", "cant_delete_message"})


class SlackActionManager:
    def __init__(self, client: AsyncWebClient, render: Render) -> None:
        self.client = client
        self.render = render

    async def setup(self, request: CallbackRequest, handler: WaitForUserAction) -> str:
        posted: list[dict[str, str]] = []
        payload = self.render(request, handler)
        try:
            for user in handler.approvers:
                response = await self.client.chat_postMessage(channel=user, **payload)
                posted.append(
                    {"user": user, "channel": str(response["channel"]), "ts": str(response["ts"])}
                )
        except Exception:
            await self._delete(posted)
            raise
        return json.dumps({"messages": posted})

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        if not request.setup_data:
            return
        await self._delete(json.loads(request.setup_data).get("messages", []))

    async def _delete(self, posted: list[dict[str, str]]) -> None:
        for message in posted:
            try:
                await self.client.chat_delete(channel=message["channel"], ts=message["ts"])
            except SlackApiError as e:
                if e.response.get("error") not in GONE:
                    raise
