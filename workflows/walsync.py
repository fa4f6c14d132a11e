"""Group commit for SQLite: one fsync of the WAL for every durable commit made before it.

What `synchronous=FULL` does after every commit in WAL mode (an fsync of the WAL), done once
for every commit made before it began, by processes of their own (`workflows.fsyncd`) that
the event loop talks to through pipes: the loop goes on serving while the disk works, and
hears the answer as it hears a socket, with no thread to hand the GIL back and forth.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("workflows.walsync")

_HELPER = str(Path(__file__).with_name("fsyncd.py"))
_RESPAWNS = 3  # times a round is sent again to a new helper if the last one died


@dataclass(eq=False)
class _Helper:
    """One fsync process, and the round it is asked for, if any."""

    process: subprocess.Popen[bytes]
    busy: bool = False
    covers: int = 0  # the commits its round in flight covers (all made before it began)

    def fileno(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()


class WalSync:
    """A commit that must last awaits `sync()`: an fsync begun after it covers it, and every
    commit made before that fsync began.

    Two rounds may run at once, each in a helper of its own (the second helper is started
    the first time a round is needed while the other is busy): a commit that comes while a
    round is under way starts the next at once instead of waiting for that round to end
    (on this kind of disk an fsync costs about the same while another is in flight), and
    when both are busy, every commit that comes meanwhile shares the next round. A round
    is started from `sync()` itself or from the pipe's reader callback when a round ends;
    each commit waits on a future of its own (with its place in commit order), resolved by
    the first round that covers it. So a durable commit costs the loop no task and one
    wake-up after its fsync.

    A commit that must last but that nobody waits for calls `soon()` instead: it joins the
    next round anyone asks for, and if none is asked for within `defer` seconds a round
    is started for it. So it takes no fsync of its own when an acknowledgement follows
    (answers coming one after another: the round a person's answer waits for is not
    taken by another workflow's teardown record)."""

    defer = 0.005  # seconds a commit made with `soon()` waits for a round to join
    helpers = 2  # rounds in flight at most

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) + "-wal"  # the helper may not share our cwd later
        self._asked = 0  # commits that must last, in commit order
        self._done = 0  # all commits up to this one are on disk
        self._owed = 0  # the newest made with `soon()`
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._deferred: asyncio.TimerHandle | None = None
        self._helpers: list[_Helper] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._respawned = 0

    @property
    def _running(self) -> bool:
        return any(h.busy for h in self._helpers)

    async def sync(self) -> None:
        """Return once every commit made so far is on disk."""
        loop = asyncio.get_running_loop()
        self._asked += 1
        done = loop.create_future()
        self._waiting.append((self._asked, done))
        self._kick(loop)
        await done

    def soon(self) -> None:
        """The commits made so far must reach the disk; nobody waits for them."""
        self._asked += 1
        self._owed = self._asked
        if self._deferred is None:
            self._deferred = asyncio.get_running_loop().call_later(self.defer, self._due)

    def _due(self) -> None:
        self._deferred = None
        self._kick(asyncio.get_running_loop())

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a round if a commit needs one that no round in flight covers, and a
        helper is free (else the first to finish starts it)."""
        need = self._waiting[-1][0] if self._waiting else 0
        if self._deferred is None:  # what `soon()` owes is due
            need = max(need, self._owed)
        flying = max((h.covers for h in self._helpers if h.busy), default=0)
        if need <= max(self._done, flying):
            return
        helper = next((h for h in self._helpers if not h.busy), None)
        if helper is None and len(self._helpers) < self.helpers:
            helper = self._spawn(loop)
            if helper is None and not self._helpers:  # none to wait for either
                self._lost(loop, None, OSError(f"no fsync helper for {self.path}"))
                return
        if helper is not None:
            helper.busy, helper.covers = True, self._asked
            self._ask(loop, helper)

    def _ask(self, loop: asyncio.AbstractEventLoop, helper: _Helper) -> None:
        try:
            assert helper.process.stdin is not None
            os.write(helper.process.stdin.fileno(), b"s")
        except OSError as error:  # it died since its last answer
            self._lost(loop, helper, error)

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> _Helper | None:
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", _HELPER, self.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # a Ctrl-C at the terminal is for the bot, not for it
            )
        except OSError as error:
            log.error("could not start an fsync helper for %s: %s", self.path, error)
            return None
        helper = _Helper(process)
        loop.add_reader(helper.fileno(), self._answered, loop, helper)
        self._helpers.append(helper)
        self._loop = loop
        return helper

    def _answered(self, loop: asyncio.AbstractEventLoop, helper: _Helper) -> None:
        try:
            answer = os.read(helper.fileno(), 1)  # one round is asked of it at a time
        except OSError as failure:
            answer, lost = b"", failure
        else:
            lost = OSError(f"the fsync helper of {self.path} exited ({helper.process.poll()})")
        if not answer:
            busy = helper.busy
            self._reap(loop, helper)
            if busy:
                self._lost(loop, helper, lost)
            return
        self._respawned = 0
        helper.busy = False
        errno = answer[0]
        failed = None if errno == 0 else OSError(errno, os.strerror(errno), self.path)
        self._finished(loop, helper.covers, failed)

    def _lost(
        self, loop: asyncio.AbstractEventLoop, helper: _Helper | None, error: OSError
    ) -> None:
        """A round's helper is gone unanswered (None: none could be started for it): an
        fsync may be redone at no risk, so the round is asked of a new helper; after a few
        in a row, the round's waiters fail."""
        covers = self._asked if helper is None else helper.covers
        if helper is not None:
            self._reap(loop, helper)
        while self._respawned < _RESPAWNS:
            self._respawned += 1
            log.warning("fsync helper of %s lost (%s); starting another", self.path, error)
            replacement = self._spawn(loop)
            if replacement is not None:
                replacement.busy, replacement.covers = True, covers
                self._ask(loop, replacement)
                return
        self._finished(loop, covers, error)

    def _reap(self, loop: asyncio.AbstractEventLoop, helper: _Helper) -> None:
        if helper not in self._helpers:
            return
        self._helpers.remove(helper)
        helper.busy = False
        loop.remove_reader(helper.fileno())
        assert helper.process.stdin is not None
        assert helper.process.stdout is not None
        helper.process.stdin.close()  # it exits at end of input, after its round if any
        helper.process.stdout.close()
        helper.process.wait()

    def _finished(
        self, loop: asyncio.AbstractEventLoop, covers: int, error: BaseException | None
    ) -> None:
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
        self._kick(loop)

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
        """Flush what is still owed or waited for, here, and stop the helpers."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self._loop is not None:
            for helper in list(self._helpers):
                self._reap(self._loop, helper)  # waits for its round in flight, unanswered
        if self._done < self._asked:
            _fdatasync(self.path)
            self._done = self._asked
            while self._waiting:
                _, done = self._waiting.popleft()
                if not done.done():
                    done.set_result(None)


def _fdatasync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # the last connection closed: all is in the database
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
