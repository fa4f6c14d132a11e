"""A real worker process for crash and concurrency tests.

`python -m tests.worker run DATABASE_URL DIR` runs an engine with the APScheduler resumer
until SIGTERM. `python -m tests.worker answer DATABASE_URL DIR WORKFLOW_ID` delivers the
"answer" callback once and exits. `CRASH_AT=<point>` makes the process SIGKILL itself the
first time it reaches that point (a marker file in DIR stops the next process from doing it
again): `step:<name>` after the step's effect but before its checkpoint, `setup` after the
outside-world effect but before it is recorded, `callback` inside the callback transaction.
Every step, setup, teardown and applied callback appends a line to a log in DIR, so the
test can count how often each really happened. `WORKER_TYPES=CrashFlow` makes a process
that knows only the workflow types named (comma-separated; all by default), as a process
of an older release would during a rolling deploy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from callbacks import Timeout, TimeoutManager
from workflows import CallbackRequest, Engine, On, Return, S, Step, Wait, Workflow
from workflows.resumer import SchedulerResumer

DIR = Path(os.environ.get("WORKER_DIR", "."))


def log(name: str, line: str) -> None:
    with open(DIR / f"{name}.log", "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def crash_point(point: str) -> None:
    if os.environ.get("CRASH_AT") != point:
        return
    marker = DIR / f"crashed-{point.replace(':', '-')}"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Answer:
    flow: CrashFlow
    type: ClassVar[str] = "answer"

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        self.flow.answers += 1
        crash_point("callback")
        return self.flow.answers


class AnswerManager:
    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        log("setups", f"{request.workflow_id} {request.name}")
        crash_point("setup")
        return "posted"

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        log("teardowns", f"{request.workflow_id} {request.name} {handled}")


class CrashFlow(Workflow):
    key: str
    steps: list[str] = []
    answers: int = 0
    step_delay: float = 0.0

    def definition(self) -> Any:
        return S(
            Step("one", lambda: self.step("one")),
            Step("two", lambda: self.step("two")),
            Wait("ask", On("answer", Answer(self))),
            Step("three", lambda: self.step("three")),
            Return(self.answers),
        )

    async def step(self, name: str) -> None:
        if self.step_delay:
            # Blocking on purpose: a process runs one such step at a time, so a test can
            # kill it after a known number of steps, with work still left.
            time.sleep(self.step_delay)  # noqa: ASYNC251
        log("steps", f"{self.key} {name}")
        crash_point(f"step:{name}")
        self.steps.append(name)


class TimerFlow(Workflow):
    """Steps, then a short durable timeout, then a step: no outside help needed."""

    key: str
    steps: list[str] = []
    after_ms: int = 500

    def definition(self) -> Any:
        return S(
            Step("before", lambda: self.step("before")),
            Wait("pause", On("timeout", Timeout(after=timedelta(milliseconds=self.after_ms)))),
            Step("after", lambda: self.step("after")),
        )

    def step(self, name: str) -> None:
        log("steps", f"{self.key} {name}")
        self.steps.append(name)


WORKFLOWS: dict[str, type[Workflow]] = {cls.workflow_type: cls for cls in (CrashFlow, TimerFlow)}


def make_engine(
    database_url: str,
    resumer: SchedulerResumer | None = None,
    types: Sequence[str] | None = None,
) -> Engine:
    """An engine that knows `types` (by default those of WORKER_TYPES, else all)."""
    if types is None:
        named = os.environ.get("WORKER_TYPES", "")
        types = named.split(",") if named else list(WORKFLOWS)
    return Engine(
        database_url,
        workflows=[WORKFLOWS[t] for t in types],
        callbacks={"answer": AnswerManager(), "timeout": TimeoutManager()},
        resumer=resumer,
        lease=timedelta(seconds=float(os.environ.get("LEASE_SECONDS", "2"))),
        retry_base=timedelta(milliseconds=200),
    )


async def run(database_url: str) -> None:
    engine = make_engine(database_url, SchedulerResumer(sweep_interval=0.2))
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    (DIR / f"ready-{os.getpid()}").touch()
    await stop.wait()
    await engine.close()


async def answer(database_url: str, workflow_id: str) -> None:
    engine = make_engine(database_url)
    await engine.start()
    try:
        record = await engine.db.get(workflow_id)
        event = record.state.threads[0].events[0]
        request = CallbackRequest(
            workflow_id=workflow_id,
            thread_id="main",
            name=event.name,
            pc=event.pc,
            setup_data=event.setup_data,
        )
        await engine.on_callback(request, None)
    finally:
        await engine.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command, database_url, directory = sys.argv[1:4]
    os.environ["WORKER_DIR"] = directory
    global DIR
    DIR = Path(directory)
    if command == "run":
        asyncio.run(run(database_url))
    elif command == "answer":
        asyncio.run(answer(database_url, sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
