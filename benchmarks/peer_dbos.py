"""DBOS Transact on the engine benchmark's scenarios, for a like-for-like comparison.

    uv run --group bench python -m benchmarks.peer_dbos --database-url URL \\
        [--approvals 1000] [--runs 200]

DBOS is a process-wide singleton, so the caller runs this module once per database, as a
subprocess. URL: `sqlite:///path/file.db` (a file that does not exist yet) or
`postgresql://user@host:port/dbname` (DBOS gets a fresh system database of its own on that
server, created by DBOS itself and dropped at the end). DBOS keeps its defaults: it is
measured as its users would run it. Prints one JSON object on stdout; logs go to stderr.

- approvals: `--approvals` workflows of the approval shape (record step, recv on topic
  "decision", record step), all started, then all answered with DBOS.send once every one
  is waiting in recv. approvals/s counts from the first start to the last result; a
  decision's latency runs from just before its send to the final step of its workflow.
- steps: a workflow of 19 checkpointed steps, run `--runs` times one after the other
  (after ten unmeasured runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, WorkflowHandle

log = logging.getLogger("benchmarks.peer_dbos")

STEPS_PER_RUN = 19
DECISION_TOPIC = "decision"
# Far beyond any run: the scenario measures answered waits, never timeouts.
RECV_TIMEOUT_S = 3600.0
# How long the started workflows get to reach recv before the run is declared broken.
BLOCKED_DEADLINE_S = 120.0


@DBOS.step()
def record(label: str) -> float:
    """A trivial checkpointed step; its wall-clock time is the workflow's finish time."""
    return time.time()


@DBOS.workflow()
def approval() -> float:
    """The approval shape: record the request, wait for the decision, record it."""
    record("request")
    decision = DBOS.recv(DECISION_TOPIC, timeout_seconds=RECV_TIMEOUT_S)
    if decision != "approve":
        raise RuntimeError(f"unexpected decision {decision!r}")
    return record("decision")


@DBOS.step()
def increment(n: int) -> int:
    return n + 1


@DBOS.workflow()
def steps19() -> int:
    """19 trivial steps, each checkpointed with its output (the counter)."""
    n = 0
    for _ in range(STEPS_PER_RUN):
        n = increment(n)
    return n


def waiting_in_recv(workflow_id: str) -> bool:
    """True once the workflow has checkpointed recv's timeout (a DBOS.sleep row), which DBOS
    writes after registering the waiter: a send from then on wakes it through the normal
    notification path rather than being found by recv's first check."""
    steps = DBOS.list_workflow_steps(workflow_id, load_output=False)
    return any(step["function_name"] == "DBOS.sleep" for step in steps)


def wait_until_blocked(handles: list[WorkflowHandle[float]]) -> None:
    """Poll each workflow in turn until all wait in recv, with a deadline instead of a sleep."""
    deadline = time.monotonic() + BLOCKED_DEADLINE_S
    for handle in handles:
        while not waiting_in_recv(handle.get_workflow_id()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflows not all in recv after {BLOCKED_DEADLINE_S} s")
            time.sleep(0.005)


def approvals(count: int) -> dict[str, float]:
    started = time.perf_counter()
    handles = [DBOS.start_workflow(approval) for _ in range(count)]
    all_started = time.perf_counter()
    wait_until_blocked(handles)
    all_blocked = time.perf_counter()
    sent_at: list[float] = []
    for handle in handles:
        sent_at.append(time.time())
        DBOS.send(handle.get_workflow_id(), "approve", DECISION_TOPIC)
    all_sent = time.perf_counter()
    finished_at = [handle.get_result() for handle in handles]
    elapsed = time.perf_counter() - started
    log.info(
        "approvals: started in %.2f s, all in recv after %.2f s, sent in %.2f s, done after %.2f s",
        all_started - started,
        all_blocked - started,
        all_sent - all_blocked,
        elapsed,
    )
    latencies_ms = [(done - sent) * 1000 for sent, done in zip(sent_at, finished_at, strict=True)]
    return {
        "approvals_per_s": count / elapsed,
        "decision_latency_ms_mean": statistics.fmean(latencies_ms),
        "decision_latency_ms_p50": statistics.median(latencies_ms),
        "decision_latency_ms_max": max(latencies_ms),
    }


def steps(runs: int, warmup: int = 10) -> float:
    """`warmup` runs first, unmeasured, as on the engine's side."""
    for _ in range(warmup):
        steps19()
    started = time.perf_counter()
    for _ in range(runs):
        if steps19() != STEPS_PER_RUN:
            raise RuntimeError("steps workflow returned a wrong count")
    return runs * STEPS_PER_RUN / (time.perf_counter() - started)


def system_database(url: str) -> tuple[str, str | None]:
    """The URL DBOS is given, and the name of the PostgreSQL database to drop afterwards."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            raise SystemExit(f"{parsed.database} exists: give a fresh SQLite file")
        return url, None
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"unsupported database URL {url!r}")
    name = f"dbos_bench_{uuid.uuid4().hex[:12]}"
    return parsed.set(drivername="postgresql", database=name).render_as_string(False), name


def drop_database(url: str, name: str) -> None:
    """Remove the system database DBOS created, so repeated runs leave nothing behind."""
    import psycopg  # a dependency of dbos; imported late, only PostgreSQL runs need it

    admin = sa.make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, count: int, runs: int) -> dict[str, Any]:
    system_url, created = system_database(url)
    DBOS(config={"name": "peer-bench", "system_database_url": system_url})
    try:
        DBOS.launch()
        result: dict[str, Any] = approvals(count)
        result["steps_per_s"] = steps(runs)
    finally:
        DBOS.destroy()
        if created is not None:
            drop_database(url, created)
    result["dbos_version"] = importlib.metadata.version("dbos")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    # Whatever DBOS or its dependencies print goes to stderr: stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args.database_url, args.approvals, args.runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
