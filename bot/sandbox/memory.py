"""The sandbox's Slack remembers its conversations across restarts.

Workflows from an earlier run still wait in the sandbox's database, and their approvers'
messages (whose channel and `ts` the workflows recorded) must still be there to be
answered and deleted. So the built-in Slack's conversations, DM channels and messages are
kept in the same database, in a table of their own, saved shortly after every change and
on shutdown. Open modals and triggers are not kept: Slack forgets them within seconds too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.sandbox.slack import Message, SlackStandin
from workflows.store import async_url

log = logging.getLogger("bot.sandbox")

TABLE = sa.Table(
    "sandbox_slack",
    sa.MetaData(),
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("doc", sa.Text, nullable=False),
)
KEY = "workspace"
SAVE_DELAY = 0.2  # seconds: a burst of changes is saved once


class SlackMemory:
    def __init__(self, slack: SlackStandin, database_url: str) -> None:
        """Restored before the bot starts: a setup retried at start-up must find the DM
        channels its workflow recorded."""
        self.slack = slack
        self.database = create_async_engine(async_url(database_url))
        self._pending: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None

    async def restore(self) -> int:
        """Load what an earlier run kept; returns how many messages came back."""
        async with self.database.begin() as conn:
            await conn.run_sync(TABLE.create, checkfirst=True)
            doc = (await conn.execute(sa.select(TABLE.c.doc).where(TABLE.c.key == KEY))).scalar()
        if doc is None:
            return 0
        kept: dict[str, Any] = json.loads(doc)
        workspace = self.slack.workspace
        workspace.channels.update(kept.get("channels", {}))
        workspace.dms.update(kept.get("dms", {}))
        workspace.messages[:0] = [Message(**m) for m in kept.get("messages", [])]
        return len(kept.get("messages", []))

    def watch(self) -> None:
        """Save after every change from now on."""
        self._unsubscribe = self.slack.subscribe(self._changed)

    def _changed(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        await asyncio.sleep(SAVE_DELAY)
        try:
            await self.save()
        except Exception:  # the next change or the shutdown saves again
            log.exception("could not save the sandbox's Slack")

    async def save(self) -> None:
        workspace = self.slack.workspace
        doc = json.dumps(
            {
                "channels": workspace.channels,
                "dms": workspace.dms,
                "messages": [dataclasses.asdict(m) for m in workspace.messages],
            }
        )
        async with self.database.begin() as conn:
            await conn.execute(TABLE.delete().where(TABLE.c.key == KEY))
            await conn.execute(TABLE.insert().values(key=KEY, doc=doc))

    async def close(self) -> None:
        self._unsubscribe()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        try:
            await self.save()
        finally:
            await self.database.dispose()
