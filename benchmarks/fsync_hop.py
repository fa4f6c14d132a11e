"""What a durable commit waits for besides the disk: the fsync's trip off the event loop.

    uv run python -m benchmarks.fsync_hop [--rounds 300]

Each round appends 4 KB to a file and waits until it is fdatasynced, three ways: on the
loop itself (blocking it: the floor), from a thread (`run_in_executor`), and through
`workflows.walsync.WalSync` (the store's helper process, asked through a pipe). Each is
timed with the loop idle and with another task running Python on it (as the bot's loop
does while executions and Slack requests are under way). Prints p50 and p99 of each, and
the thread's figures as a multiple of the helper's. Last, an fdatasync on the loop while
another process fdatasyncs the same file without pause, against one alone: whether a
second round in flight (`WalSync.helpers`) waits for the first on this disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from workflows.walsync import WalSync


async def busy(stop: asyncio.Event) -> None:
    """Python on the loop, giving way between short runs as a busy bot does."""
    total = 0
    while not stop.is_set():
        for i in range(2000):
            total += i
        await asyncio.sleep(0)


async def rounds(
    fd: int, flush: Callable[[], Awaitable[None]], count: int, loaded: bool
) -> list[float]:
    stop = asyncio.Event()
    other = asyncio.create_task(busy(stop)) if loaded else None
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            await flush()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        stop.set()
        if other is not None:
            await other
    return times


def figures(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


# Appends and fdatasyncs its file until stdin closes.
_OTHER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.set_blocking(0, False)
while True:
    try:
        if os.read(0, 1) == b"":
            break
    except BlockingIOError:
        pass
    os.write(fd, b"y" * 4096)
    os.fdatasync(fd)
"""


def overlapped(fd: int, path: str, count: int) -> tuple[float, float]:
    """fdatasyncs of `fd`, while another process fdatasyncs `path` without pause."""
    other = subprocess.Popen([sys.executable, "-c", _OTHER, path], stdin=subprocess.PIPE)
    try:
        time.sleep(0.2)  # under way
        times = []
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
        return figures(times)
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        database = str(Path(tmp) / "bench.db")
        fd = os.open(database + "-wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        wal = WalSync(database)
        loop = asyncio.get_running_loop()

        async def on_loop() -> None:
            os.fdatasync(fd)

        async def thread() -> None:
            await loop.run_in_executor(None, os.fdatasync, fd)

        ways = {
            "on the loop (blocks it)": on_loop,
            "from a thread": thread,
            "helper process": wal.sync,
        }
        results: dict[tuple[str, bool], tuple[float, float]] = {}
        try:
            for loaded in (False, True):
                for name, flush in ways.items():
                    if name.startswith("on the loop") and loaded:
                        continue  # blocking the loop stops the other task: nothing to compare
                    results[name, loaded] = figures(await rounds(fd, flush, args.rounds, loaded))
            both = overlapped(fd, database + "-wal", args.rounds)
        finally:
            wal.close()
            os.close(fd)
    print(f"fdatasync of a 4 KB append, {args.rounds} rounds each (ms)")
    for (name, loaded), (p50, p99) in results.items():
        state = "loop running Python" if loaded else "loop idle"
        print(f"  {name:26s} {state:20s} p50 {p50:8.3f}  p99 {p99:8.3f}")
    for loaded in (False, True):
        t, h = results["from a thread", loaded], results["helper process", loaded]
        state = "loop running Python" if loaded else "loop idle"
        print(f"  thread / helper, {state}: p50 {t[0] / h[0]:.1f}x, p99 {t[1] / h[1]:.1f}x")
    alone = results["on the loop (blocks it)", False]
    print(
        f"  on the loop while another process fdatasyncs the file: p50 {both[0]:.3f}  "
        f"p99 {both[1]:.3f} ({both[0] / alone[0]:.1f}x and {both[1] / alone[1]:.1f}x alone)"
    )


if __name__ == "__main__":
    asyncio.run(main())
