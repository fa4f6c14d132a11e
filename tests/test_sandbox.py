"""The sandbox as a user runs it (`python -m bot sandbox`, a real process): what it keeps
across a restart, and what `--fresh` forgets."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.sandbox.page import running_sandbox
from bot.sandbox.slack import BOT_USER_ID
from tests.processes import ROOT, free_port, poll
from tests.sandbox_blueprint import BLUEPRINTS
from workflows.store import SQLStore


class SandboxProcess:
    def __init__(self, directory: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"sandbox-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "sandbox", "--port", str(self.port), *args],
                cwd=directory,
                env={**env, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def call(self, method: str, path: str, **body: Any) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=body or None) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def ready(self) -> None:
        async def up() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                await self.call("GET", "/sandbox/api/state")
            except aiohttp.ClientError:
                return False
            return True

        await poll(up, 30, "the sandbox did not serve its page")

    async def messages(self, user: str, channel: str) -> list[dict[str, Any]]:
        state = await self.call("GET", f"/sandbox/api/state?user={user}")
        found: list[dict[str, Any]] = state["messages"][channel]
        return found

    async def dm_of(self, user: str) -> str:
        state = await self.call("GET", f"/sandbox/api/state?user={user}")
        return next(c["id"] for c in state["conversations"] if c.get("with") == user)

    def stop(self, sig: int = signal.SIGINT) -> None:
        self.process.send_signal(sig)
        self.process.wait(30)


@pytest.fixture
def processes() -> Iterator[list[SandboxProcess]]:
    started: list[SandboxProcess] = []
    yield started
    for p in started:
        if p.process.poll() is None:
            p.stop(signal.SIGKILL)


def kept(database: Path, text: str) -> bool:
    """Whether the sandbox's Slack has saved a message containing `text`."""
    if not database.exists():
        return False
    with sqlite3.connect(database) as db:
        try:
            rows = db.execute("SELECT doc FROM sandbox_slack").fetchall()
        except sqlite3.OperationalError:
            return False
    return any(text in doc for (doc,) in rows)


async def test_a_request_waiting_before_a_kill_is_answered_after_the_restart(
    tmp_path: Path, processes: list[SandboxProcess]
) -> None:
    first = SandboxProcess(tmp_path)
    processes.append(first)
    await first.ready()
    await first.call(
        "POST", "/sandbox/api/send", user="U0RITA", text="/approval @alice Keep me waiting"
    )
    alice_dm = await first.dm_of("U0ALICE")

    async def asked() -> bool:
        return any(
            "Keep me waiting" in m["text"] for m in await first.messages("U0ALICE", alice_dm)
        )

    await poll(asked, 15, "alice was not asked")
    await poll(lambda: kept(tmp_path / "sandbox.db", "Keep me waiting"), 10, "nothing was saved")
    first.stop(signal.SIGKILL)

    second = SandboxProcess(tmp_path)
    processes.append(second)
    await second.ready()
    assert await second.dm_of("U0ALICE") == alice_dm  # the same conversation
    (request,) = [
        m for m in await second.messages("U0ALICE", alice_dm) if "Keep me waiting" in m["text"]
    ]
    await second.call(
        "POST",
        "/sandbox/api/click",
        user="U0ALICE",
        channel=alice_dm,
        ts=request["ts"],
        action_id="approval_approve",
    )
    rita_dm = await second.dm_of("U0RITA")

    async def told() -> bool:
        return any("*approved*" in m["text"] for m in await second.messages("U0RITA", rita_dm))

    await poll(told, 15, "rita was not told")

    async def withdrawn() -> bool:
        return not any(m["ts"] == request["ts"] for m in await second.messages("U0ALICE", alice_dm))

    await poll(withdrawn, 15, "alice's request message was not deleted")
    second.stop()
    assert "messages of the last run are back" in second.log.read_text()

    fresh = SandboxProcess(tmp_path, "--fresh")
    processes.append(fresh)
    await fresh.ready()
    assert "Starting fresh: removed sandbox.db" in fresh.log.read_text()
    assert await fresh.messages("U0RITA", await fresh.dm_of("U0RITA")) == []
    state = await fresh.call("GET", "/sandbox/api/state")
    assert state["workflows"] == []
    fresh.stop()


async def test_a_corrupt_row_is_shown_as_corrupt_beside_the_others(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    async with running_sandbox(port=0, database_url=f"sqlite:///{database}") as sandbox:
        for text in ("First request", "Second request"):
            await sandbox.slack.slash_command("U0RITA", f"<@U0ALICE|alice> {text}")
        store = sandbox.service.engine.db
        assert isinstance(store, SQLStore)

        async def settled() -> bool:  # nothing writes the rows again until someone answers
            records = await store.list_workflows()
            return len(records) == 2 and all(
                r.status == "waiting" and r.lease_owner is None for r in records
            )

        await poll(settled, 15, "the requests did not settle into waiting")
        first, second = await store.list_workflows()
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "UPDATE workflows SET data = '{\"requester\": ' WHERE id = ?", (first.id,)
            )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sandbox.url}/sandbox/api/state") as response,
        ):
            assert response.status == 200
            shown = {w["id"]: w for w in (await response.json())["workflows"]}
        assert shown[first.id]["outcome"] == "corrupt"
        assert "data" in shown[first.id]["problem"]
        assert shown[second.id]["summary"]["title"] == "Second request"


async def test_the_page_submits_lists_for_multi_selects_and_checkboxes(tmp_path: Path) -> None:
    """The page's submit takes what each input holds: text, or the values chosen in a
    multi-select or checkboxes; what no input could hold is refused with the reason."""
    async with (
        running_sandbox(
            port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}", blueprints=BLUEPRINTS
        ) as sandbox,
        aiohttp.ClientSession(base_url=sandbox.url) as http,
    ):

        async def call(path: str, **body: Any) -> Any:
            async with http.post(f"/sandbox/api/{path}", json={"user": "U0RITA", **body}) as r:
                assert r.status == 200, await r.text()
                return await r.json()

        assert (await call("send", text="/release"))["ok"] is True
        async with http.get("/sandbox/api/state?user=U0RITA") as response:
            (view,) = (await response.json())["views"]
        filled = {
            "environment": {"environment": "staging"},
            "reviewers": {"reviewers": ["U0ALICE", "U0BOB"]},
            "canary_percent": {"canary_percent": "5"},
            "announce": {"announce": ["yes"]},
            "day": {"day": "2026-12-31"},
            "notes": {"notes": ""},
        }
        wrong = {**filled, "notes": {"notes": ["a", "list"]}}  # the built-in Slack refuses
        answer = await call("submit", view_id=view["id"], values=wrong)
        assert answer == {"ok": False, "error": "a plain_text_input holds one value, not a list"}
        nested = {**filled, "reviewers": {"reviewers": [["U0ALICE"]]}}
        answer = await call("submit", view_id=view["id"], values=nested)
        assert answer["error"] == "values must map block ids to action ids to text or lists of text"
        unknown = {**filled, "environment": {"environment": "moon"}}
        answer = await call("submit", view_id=view["id"], values=unknown)
        assert answer == {"ok": False, "error": "the static_select offers no option 'moon'"}
        assert await call("submit", view_id=view["id"], values=filled) == {"ok": True}
        store = sandbox.service.engine.db
        assert isinstance(store, SQLStore)
        (record,) = await store.list_workflows()
        assert record.data["reviewers"] == ["U0ALICE", "U0BOB"]
        assert record.data["announce"] is True


async def test_the_state_gives_threads_as_slacks_history_does(tmp_path: Path) -> None:
    """Each reply names its parent; a parent carries its thread's count, who replied and
    the latest reply; a deleted parent with replies stays as a tombstone, and goes with its
    last reply."""
    async with (
        running_sandbox(port=0, database_url=f"sqlite:///{tmp_path / 'sandbox.db'}") as sandbox,
        aiohttp.ClientSession(base_url=sandbox.url) as http,
    ):
        client = sandbox.service.client  # the bot's own Web API client, to the built-in Slack

        async def general() -> list[dict[str, Any]]:
            async with http.get("/sandbox/api/state?user=U0RITA") as response:
                assert response.status == 200
                found: list[dict[str, Any]] = (await response.json())["messages"]["C0GENERAL"]
                return found

        parent = (await client.chat_postMessage(channel="C0GENERAL", text="The card"))["ts"]
        alone = (await client.chat_postMessage(channel="C0GENERAL", text="No thread"))["ts"]
        replies = [
            (await client.chat_postMessage(channel="C0GENERAL", text=t, thread_ts=parent))["ts"]
            for t in ("first line", "second line")
        ]
        by_ts = {m["ts"]: m for m in await general()}
        assert by_ts[parent]["thread_ts"] == parent
        assert by_ts[parent]["reply_count"] == 2
        assert by_ts[parent]["reply_users"] == [BOT_USER_ID]
        assert by_ts[parent]["latest_reply"] == replies[-1]
        assert [by_ts[ts]["thread_ts"] for ts in replies] == [parent, parent]
        assert "reply_count" not in by_ts[replies[0]]
        assert by_ts[alone]["thread_ts"] == ""
        assert "reply_count" not in by_ts[alone]

        await client.chat_delete(channel="C0GENERAL", ts=parent)
        tombstone = next(m for m in await general() if m["ts"] == parent)
        assert tombstone["deleted"] is True
        assert tombstone["text"] == "This message was deleted."
        assert tombstone["blocks"] == []
        assert tombstone["reply_count"] == 2
        for ts in replies:
            await client.chat_delete(channel="C0GENERAL", ts=ts)
        assert [m["ts"] for m in await general()] == [alone]
