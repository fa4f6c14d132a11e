"""Starting, waiting for and killing real worker processes (see tests/worker.py)."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    def __init__(
        self,
        command: str,
        database_url: str,
        directory: Path,
        *args: str,
        crash_at: str | None = None,
        lease_seconds: float = 2.0,
        types: Sequence[str] | None = None,
    ) -> None:
        """`types`: the only workflow types the process knows (default: all of the worker's)."""
        env = {
            **os.environ,
            "WORKER_DIR": str(directory),
            "LEASE_SECONDS": str(lease_seconds),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("CRASH_AT", None)
        env.pop("WORKER_TYPES", None)
        if crash_at:
            env["CRASH_AT"] = crash_at
        if types is not None:
            env["WORKER_TYPES"] = ",".join(types)
        self.directory = directory
        self.output = open(directory / f"worker-{time.monotonic_ns()}.out", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker", command, database_url, str(directory), *args],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, timeout: float = 30.0) -> Worker:
        marker = self.directory / f"ready-{self.process.pid}"
        await poll(
            lambda: marker.exists() or self.process.poll() is not None,
            timeout,
            f"worker {self.process.pid} did not start",
        )
        assert self.process.poll() is None, self.log()
        return self

    async def exited(self, timeout: float = 30.0) -> int:
        await poll(
            lambda: self.process.poll() is not None,
            timeout,
            f"worker {self.process.pid} did not exit",
        )
        self.output.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.output.close()

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.exited()

    def log(self) -> str:
        self.output.flush()
        return Path(self.output.name).read_text(errors="replace")


async def poll(
    condition: Callable[[], object],
    timeout: float,
    message: str,
    interval: float = 0.05,
) -> None:
    """Wait until `condition` holds, checking every `interval`; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s")
        await asyncio.sleep(interval)


def counts(directory: Path, name: str) -> Counter[str]:
    path = directory / f"{name}.log"
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text().splitlines() if line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BotProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["PORT"])
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        async def healthy() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{self.port}/healthz") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await poll(healthy, 30, "the bot did not become healthy")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(10) == -signal.SIGKILL

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit without blocking this process's event loop: the
        built-in Slack it may host must go on answering the bot's last calls."""
        self.process.send_signal(signal.SIGTERM)
        await poll(lambda: self.process.poll() is not None, timeout, "the bot did not stop")
        return self.process.returncode
