"""Group commit for SQLite: one fsync of the WAL for every durable commit made before it.

What `synchronous=FULL` does after every commit in WAL mode (an fsync of the WAL), done once
for every commit made before it began, by a process of its own (`workflows.fsyncd`) that the
event loop talks to through a pipe: the loop goes on serving while the disk works, and hears
the answer as it hears a socket, with no thread to hand the GIL back and forth.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("workflows.walsync")

_HELPER = str(Path(__file__).with_name("fsyncd.py"))
_RESPAWNS = 3  # times a round is sent again to a new helper if the last one died


class WalSync:
    """A commit that must last awaits `sync()`: if an fsync is already running, it waits for
    the next one, which covers it and every commit that came meanwhile.

    A round is started as soon as a commit asks for one (none running) and the next as
    soon as the loop hears the last is over, from the pipe's reader callback; each commit
    waits on a future of its own (with its place in commit order), which the round that
    covers it resolves. So a durable commit costs the loop no task and one wake-up after
    its fsync.

    A commit that must last but that nobody waits for calls `soon()` instead: it joins the
    next round anyone asks for, and if none is asked for within `defer` seconds a round
    is started for it. So it takes no fsync of its own when an acknowledgement follows
    (answers coming one after another: the round a person's answer waits for is not
    taken by another workflow's teardown record, which would make the answer wait for
    two)."""

    defer = 0.005  # seconds a commit made with `soon()` waits for a round to join

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) + "-wal"  # the helper may not share our cwd later
        self._asked = 0  # commits that must last, in commit order
        self._done = 0  # how many of them the last round covered
        self._owed = 0  # the newest made with `soon()`
        self._covers = 0  # what the round in flight covers
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._running = False
        self._deferred: asyncio.TimerHandle | None = None
        self._helper: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._respawned = 0

    async def sync(self) -> None:
        """Return once every commit made so far is on disk."""
        loop = asyncio.get_running_loop()
        self._asked += 1
        done = loop.create_future()
        self._waiting.append((self._asked, done))
        if not self._running:
            self._start(loop)
        await done

    def soon(self) -> None:
        """The commits made so far must reach the disk; nobody waits for them."""
        self._asked += 1
        self._owed = self._asked
        if self._deferred is None:
            self._deferred = asyncio.get_running_loop().call_later(self.defer, self._due)

    def _due(self) -> None:
        self._deferred = None
        if self._done < self._owed and not self._running:
            self._start(asyncio.get_running_loop())
        # else the round running now, or the one after it, covers them (`_finished`)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running = True
        self._covers = self._asked  # all of them committed before the fsync begins
        self._ask(loop)

    def _ask(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            helper = self._helper if self._helper is not None else self._spawn(loop)
            assert helper.stdin is not None
            os.write(helper.stdin.fileno(), b"s")
        except OSError as error:  # it could not start, or died since its last answer
            self._lost(loop, error)

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> subprocess.Popen[bytes]:
        helper = subprocess.Popen(
            [sys.executable, "-I", "-S", _HELPER, self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # a Ctrl-C at the terminal is for the bot, not for it
        )
        assert helper.stdout is not None
        loop.add_reader(helper.stdout.fileno(), self._answered, loop, helper)
        self._helper, self._loop = helper, loop
        return helper

    def _answered(self, loop: asyncio.AbstractEventLoop, helper: subprocess.Popen[bytes]) -> None:
        assert helper.stdout is not None
        try:
            answer = os.read(helper.stdout.fileno(), 1)  # one round is asked at a time
        except OSError as failure:
            answer, lost = b"", failure
        else:
            lost = OSError(f"the fsync helper of {self.path} exited ({helper.poll()})")
        if not answer:
            self._reap(loop)
            if self._running:
                self._lost(loop, lost)
            return
        self._respawned = 0
        errno = answer[0]
        failed = None if errno == 0 else OSError(errno, os.strerror(errno), self.path)
        self._finished(loop, self._covers, failed)

    def _lost(self, loop: asyncio.AbstractEventLoop, error: OSError) -> None:
        """The helper is gone with a round unanswered: an fsync may be redone at no risk,
        so a new one is asked again; after a few in a row, the round's waiters fail."""
        self._reap(loop)
        if self._respawned < _RESPAWNS:
            self._respawned += 1
            log.warning("fsync helper of %s lost (%s); starting another", self.path, error)
            self._ask(loop)
        else:
            self._finished(loop, self._covers, error)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        helper, self._helper = self._helper, None
        if helper is None:
            return
        assert helper.stdin is not None
        assert helper.stdout is not None
        loop.remove_reader(helper.stdout.fileno())
        helper.stdin.close()  # it exits at end of input, after the round in flight if any
        helper.stdout.close()
        helper.wait()

    def _finished(
        self, loop: asyncio.AbstractEventLoop, covers: int, error: BaseException | None
    ) -> None:
        self._running = False
        if error is None:
            self._done = max(self._done, covers)
        elif self._done < self._owed <= covers:  # nobody waits to be told: say it here
            log.error("fsync of the SQLite WAL %s failed: %s", self.path, error)
            self._owed = self._done
        while self._waiting and self._waiting[0][0] <= covers:
            _, done = self._waiting.popleft()
            if done.done():  # its waiter was cancelled
                continue
            if error is None:
                done.set_result(None)
            else:  # the commit may not be on disk: its waiter hears so
                done.set_exception(error)
        if self._waiting or (self._done < self._owed and self._deferred is None):
            self._start(loop)

    async def sync_alone(self) -> None:
        """`sync()`, but with no round under way to join, the fdatasync is done here on the
        loop (as `synchronous=FULL` would in the commit): for one workflow's steps one
        after another, a round trip to the helper costs more than the loop is kept."""
        if self._running or self._waiting:
            await self.sync()
            return
        self._asked += 1
        _fdatasync(self.path)
        self._done = self._asked

    def close(self) -> None:
        """Flush what is still owed or waited for, here, and stop the helper."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self._loop is not None:
            self._reap(self._loop)  # waits for the round in flight, unanswered
        if self._done < self._asked:
            _fdatasync(self.path)
            self._done = self._asked
            while self._waiting:
                _, done = self._waiting.popleft()
                if not done.done():
                    done.set_result(None)
        self._running = False


def _fdatasync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # the last connection closed: all is in the database
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
