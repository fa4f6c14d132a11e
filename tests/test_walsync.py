"""The process that fsyncs SQLite's WAL (`workflows.fsyncd`): a durable commit still
returns when it dies, even in the middle of the commit's fsync, and it never outlives the
store or the process that started it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.processes import ROOT
from workflows.state import State
from workflows.store import SQLStore
from workflows.types import Record


def helpers(database: Path) -> dict[int, str]:
    """The fsync helpers of `database`'s WAL, found as any process is: pid → state."""
    found = {}
    wal = f"{database}-wal".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        if any(a.endswith(b"fsyncd.py") for a in argv) and wal in argv:
            found[int(entry.name)] = stat.rsplit(")", 1)[1].split()[0]
    return found


def running(database: Path) -> set[int]:
    return {pid for pid, state in helpers(database).items() if state != "Z"}


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def committed(database: Path, wid: str) -> bool:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute("SELECT 1 FROM workflows WHERE id = ?", (wid,)).fetchone() is not None


def record(wid: str) -> Record:
    now = datetime.now(UTC)
    return Record(
        id=wid, type="t", status="running", data={}, state=State(), created_at=now, updated_at=now
    )


async def all_stored(store: SQLStore, *ids: str) -> None:
    assert [(await store.get(w)).id for w in ids] == list(ids)


async def test_a_killed_helper_is_replaced_and_commits_still_return(tmp_path: Path) -> None:
    database = tmp_path / "w.db"
    store = SQLStore(f"sqlite:///{database}")
    await store.start()
    try:
        await store.create(record("w1"))  # durable: the first fsync starts the helper
        (first,) = running(database)
        os.kill(first, signal.SIGKILL)
        await until(lambda: first not in running(database), "the helper died")
        await asyncio.wait_for(store.create(record("w2")), 10)
        await asyncio.wait_for(store.create(record("w3")), 10)
        (second,) = running(database)
        assert second != first

        # Killed with a round asked of it and unanswered: the round is asked again.
        os.kill(second, signal.SIGSTOP)
        creating = asyncio.create_task(store.create(record("w4")))
        # The commit and the request to fsync it are made in one step of the task, so
        # once the row is visible the helper has been asked.
        await until(lambda: committed(database, "w4"), "w4 committed")
        assert not creating.done()
        os.kill(second, signal.SIGKILL)
        await asyncio.wait_for(creating, 10)
        (third,) = running(database)
        assert third not in (first, second)
        await all_stored(store, "w1", "w2", "w3", "w4")
    finally:
        await store.close()
    assert not helpers(database), "the store's close left its helper behind"


async def test_a_commit_during_a_round_is_fsynced_at_once_by_a_second_helper(
    tmp_path: Path,
) -> None:
    """A round that does not end holds up no later commit: the next one's fsync starts at
    once in a second helper, and, begun after the stalled commit, covers it as well."""
    database = tmp_path / "w.db"
    store = SQLStore(f"sqlite:///{database}")
    await store.start()
    try:
        await store.create(record("w1"))
        (first,) = running(database)
        os.kill(first, signal.SIGSTOP)
        stalled = asyncio.create_task(store.create(record("w2")))
        await until(lambda: committed(database, "w2"), "w2 committed")
        assert not stalled.done()
        await asyncio.wait_for(store.create(record("w3")), 10)
        await asyncio.wait_for(stalled, 10)  # the second helper's fsync covered it
        assert len(running(database)) == 2
        os.kill(first, signal.SIGKILL)  # its round, lost, is asked of a new helper
        await until(lambda: first not in running(database), "the stopped helper died")
        await asyncio.wait_for(store.create(record("w4")), 10)
        await all_stored(store, "w1", "w2", "w3", "w4")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first, signal.SIGKILL)
        await store.close()
    assert not helpers(database), "the store's close left a helper behind"


SCRIPT = """
import asyncio, sys
from tests.test_walsync import record
from workflows.store import SQLStore

async def main():
    store = SQLStore(f"sqlite:///{sys.argv[1]}")
    await store.start()
    await store.create(record("w1"))
    print("created", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_helper_ends_when_the_bot_is_killed(tmp_path: Path) -> None:
    database = tmp_path / "w.db"
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        str(database),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert bot.stdout is not None
        assert await asyncio.wait_for(bot.stdout.readline(), 30) == b"created\n"
        (helper,) = running(database)
        bot.kill()  # SIGKILL: nothing of the bot's runs after it
        await bot.wait()
        await until(lambda: helper not in running(database), "the helper exited")
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
