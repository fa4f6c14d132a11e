"""What SQLite makes durable, counted in the real process's fsyncs (`strace`).

Step checkpoints are cheap (WAL, `synchronous=NORMAL`: no fsync per commit); the commits
whose loss a person could see (a new request, an applied click, setups and teardowns,
operator changes) wait for the WAL's fsync, as on PostgreSQL, concurrent ones sharing one
(group commit); `fsync_steps` makes every checkpoint wait too. A setup's or teardown's
record after which the workflow waits for the outside world joins the next fsync (the
answer that follows it) or gets one of its own within milliseconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

STEPS = 300
CREATED = 20
CONCURRENT = 50

SCRIPT = f"""
import asyncio, os, sys
from workflows import Engine, For, Return, S, Step, Workflow
from workflows.store import SQLStore

class Counter(Workflow):
    n: int = 0
    def definition(self):
        return S(For("loop", self.n < {STEPS}, Step("inc", self.inc)), Return(self.n))
    def inc(self):
        self.n += 1

async def main(path, fsync_steps):
    store = SQLStore(f"sqlite:///{{path}}", fsync_steps=fsync_steps)
    engine = Engine(db=store, workflows=[Counter], steps_per_run=10_000)
    await engine.start()
    wid = await engine.new_workflow(Counter())
    os.getppid()  # marks the start of the checkpoints
    await engine.execute(wid)
    os.getppid()  # their end, and the start of the durable commits
    for _ in range({CREATED}):
        await engine.new_workflow(Counter())
    os.getppid()  # and the start of concurrent creations, which share their fsyncs
    await asyncio.gather(*(engine.new_workflow(Counter()) for _ in range({CONCURRENT})))
    os.getppid()
    assert (await engine.get(wid)).output == {STEPS}
    await engine.close()

asyncio.run(main(sys.argv[1], sys.argv[2] == "1"))
"""


def fsyncs_per_phase(
    tmp_path: Path, fsync_steps: bool, script: str = SCRIPT, phases: int = 3
) -> list[int]:
    """fsync/fdatasync calls between the script's markers (`os.getppid()`): by default
    [checkpoints, creations one after another, concurrent creations]."""
    strace = shutil.which("strace")
    if strace is None:
        message = "strace is not installed: `apt-get install strace` enables the fsync counts"
        if os.environ.get("REQUIRE_STRACE"):
            pytest.fail(message)
        pytest.skip(message)
    trace = tmp_path / f"trace-{int(fsync_steps)}.txt"
    subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,getppid",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            script,
            str(tmp_path / f"durable-{int(fsync_steps)}.db"),
            "1" if fsync_steps else "0",
        ],
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    counts: list[int] = []
    for line in trace.read_text().splitlines():
        if "getppid(" in line:
            counts.append(0)
        elif counts and ("fsync(" in line or "fdatasync(" in line) and "= 0" in line:
            counts[-1] += 1
    assert len(counts) == phases + 1, trace.read_text()
    return counts[:phases]


@pytest.mark.timeout(180)
def test_checkpoints_are_cheap_and_what_a_person_sees_is_flushed(tmp_path: Path) -> None:
    checkpoints, creations, concurrent = fsyncs_per_phase(tmp_path, fsync_steps=False)
    # 300 checkpoints: no fsync of their own (the WAL checkpointer may run once or twice).
    assert checkpoints <= 6, checkpoints
    assert creations >= CREATED, creations  # each new workflow waits for the WAL's fsync
    # Fifty at once share fsyncs (group commit), and still none returns before one.
    assert 1 <= concurrent < CONCURRENT / 2, concurrent


@pytest.mark.timeout(180)
def test_fsync_steps_flushes_every_checkpoint(tmp_path: Path) -> None:
    checkpoints, creations, _ = fsyncs_per_phase(tmp_path, fsync_steps=True)
    assert checkpoints >= STEPS, checkpoints
    assert creations >= CREATED, creations


ANSWERED = 30

APPROVALS = f"""
import asyncio, os, sys
from typing import Any, ClassVar
from workflows import CallbackRequest, Engine, On, Return, S, Step, Wait, Workflow
from workflows.store import SQLStore

class Answer:
    type: ClassVar[str] = "answer"
    async def handle(self, request, input):
        return input

class Quiet:
    async def setup(self, request, handler):
        return "set up"
    async def teardown(self, request, handler, handled):
        return None

class Approval(Workflow):
    def definition(self):
        return S(Step("asked", lambda: None), Wait("decision", On("answer", Answer())),
                 Return("done"))

async def main(path):
    engine = Engine(db=SQLStore(f"sqlite:///{{path}}"), workflows=[Approval],
                    callbacks={{"answer": Quiet()}})
    await engine.start()
    ids = [await engine.new_workflow(Approval()) for _ in range({ANSWERED})]
    await asyncio.sleep(0.1)
    os.getppid()  # the setups: each records its wait, and nothing follows it
    for wid in ids:
        await engine.execute(wid)
    await asyncio.sleep(0.1)  # nothing else commits: their records flush by themselves
    os.getppid()  # answers one after another, each followed by its teardown
    for wid in ids:
        await engine.on_callback(CallbackRequest(workflow_id=wid, thread_id="main",
                                                 name="answer", pc=1))
        await engine.execute(wid)
    os.getppid()
    for wid in ids:
        record = await engine.db.get(wid)
        assert (record.status, record.lease_owner, record.due_at) == ("finished", None, None)
    await engine.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.timeout(180)
def test_answers_wait_for_the_disk_and_records_of_what_was_done_join_them(
    tmp_path: Path,
) -> None:
    setups, answers = fsyncs_per_phase(tmp_path, False, APPROVALS, phases=2)
    # The setups' records reach the disk by themselves, though nothing else commits.
    assert setups >= 1, setups
    # Each answer waits for an fsync, which also carries the previous teardown's record
    # (each took one of its own before: twice as many). A teardown whose next answer
    # comes later than `WalSync.defer` gets one of its own, so a slow machine counts
    # more, never fewer.
    assert ANSWERED <= answers < ANSWERED * 2, answers
