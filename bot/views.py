"""How the operator CLI shows workflows: in the words of the people involved first (what it
is about, who started it, who answered what, how it stands: `Workflow.summary()`), the
engine's positions (threads, steps, waits) after it and in `--json`.

A row that cannot be read is shown as corrupt, with the reason, never as a traceback: the
operator is often looking for exactly that row.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from workflows import Summary, Workflow
from workflows.store import CorruptRecord
from workflows.types import Record

SHORT_ID = 8
"""Characters of an id in the table, as the sandbox page shows them."""


@dataclass(frozen=True)
class View:
    """One stored workflow as the CLI shows it. `summary` is None when the row cannot be
    read, and `problem` says why."""

    entry: Record | CorruptRecord
    summary: Summary | None = None
    problem: str | None = None

    @property
    def record(self) -> Record | None:
        return None if isinstance(self.entry, CorruptRecord) else self.entry

    @property
    def status(self) -> str:
        """How it stands, in words: the outcome once there is one (approved, denied, timed
        out), else the record's status (waiting, running); a cancelled or failed workflow
        reads as such whatever its data says."""
        if self.problem is not None:
            return "corrupt"
        if self.entry.status in ("cancelled", "failed"):
            return self.entry.status
        outcome = self.summary.outcome if self.summary is not None else ""
        return outcome or self.entry.status


def view(entry: Record | CorruptRecord, workflows: Mapping[str, type[Workflow]]) -> View:
    """The view of a stored row. Data that no longer validates against its workflow's
    model is corrupt too (the engine would refuse to run it); a type this release does not
    know is called by its type name."""
    if isinstance(entry, CorruptRecord):
        return View(entry, problem=entry.problem)
    cls = workflows.get(entry.type)
    if cls is None:
        return View(entry, Summary(title=entry.type))
    try:
        return View(entry, cls.model_validate(entry.data).summary())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        return View(
            entry, problem=f"workflow {entry.id!r}: data does not validate: {where}: {first['msg']}"
        )


def summary_fields(v: View) -> dict[str, Any] | None:
    """The summary as JSON, with `status` the word the table shows."""
    return None if v.summary is None else {**asdict(v.summary), "status": v.status}


def positions(record: Record) -> str:
    """Where each thread is, on one line (the engine's view)."""
    return ", ".join(f"{t.id}@{t.step or 'start'}({t.status})" for t in record.state.threads)


def listed(v: View) -> dict[str, Any]:
    """A `list --json` line: the row's columns, `summary`, and `corrupt` (why the row
    cannot be read, or null)."""
    e = v.entry
    return {
        "id": e.id,
        "type": e.type,
        "status": e.status,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "threads": None if v.record is None else positions(v.record),
        "error": e.error,
        "summary": summary_fields(v),
        "corrupt": v.problem,
    }


def table(views: Sequence[View], width: int | None = None) -> list[str]:
    """The `list` table: id, what it is about (its first line, cut to fit the terminal),
    who started it, how it stands, when, and everyone's answers so far (or, for a row
    that cannot be read, why)."""
    width = width or shutil.get_terminal_size().columns
    ids = short_ids([v.entry.id for v in views])
    titles = [first_line(v.summary.title) if v.summary else "(cannot be read)" for v in views]
    starters = [v.summary.started_by if v.summary else "" for v in views]
    w_id = max(map(len, ["ID", *ids]))
    w_by = max(map(len, ["BY", *starters]))
    w_status = max(len("STATUS"), *(len(v.status) for v in views)) if views else len("STATUS")
    # What it is about leads: at least 30 characters, more as the terminal allows after
    # the other columns and the start of PEOPLE (which may wrap).
    room = width - (w_id + w_by + w_status + 16 + 2 * 5) - 16
    w_what = max(len("WHAT"), min(max(map(len, titles), default=0), max(30, room)))
    lines = [
        f"{'ID':{w_id}}  {'WHAT':{w_what}}  {'BY':{w_by}}  {'STATUS':{w_status}}  "
        f"{'CREATED':16}  PEOPLE"
    ]
    for v, short, title, by in zip(views, ids, titles, starters, strict=True):
        people = ", ".join(f"{u} {a}" for u, a in v.summary.people.items()) if v.summary else ""
        lines.append(
            f"{short:{w_id}}  {cut(title, w_what):{w_what}}  {by:{w_by}}  "
            f"{v.status:{w_status}}  {_minute(v.entry.created_at):16}  "
            f"{' '.join((v.problem or '').split()) or people}".rstrip()
        )
    return lines


def short_ids(ids: Sequence[str]) -> list[str]:
    """The ids cut to `SHORT_ID` characters, or to as many more as keep them apart."""
    n = SHORT_ID
    while len({i[:n] for i in ids}) < len(set(ids)):
        n += 1
    return [i[:n] for i in ids]


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _minute(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else ""


def shown(v: View, history: list[dict[str, Any]]) -> list[str]:
    """`show` as text: the summary, then `detail:` with the engine's view of it."""
    s = v.summary
    if s is None:
        lines = [f"CORRUPT: {v.problem}"]
    else:
        lines = s.title.strip().splitlines() or [v.entry.type]
        lines.append(f"{'status':11} {v.status}")
        if s.started_by:
            lines.append(f"{'started by':11} {s.started_by}")
        for i, (user, answer) in enumerate(s.people.items()):
            lines.append(f"{'' if i else 'people':11} {user} {answer}")
    lines.append("detail:")
    lines.extend("  " + line for line in _detail(v, history))
    return lines


def _detail(v: View, history: list[dict[str, Any]]) -> list[str]:
    e, record = v.entry, v.record
    lines = [f"{'id':11} {e.id}", f"{'type':11} {e.type}", f"{'status':11} {e.status}"]
    lines.append(f"{'error':11} {e.error}")
    if record is None:
        assert isinstance(e, CorruptRecord)
        for name in ("attempts", "due_at", "created_at", "updated_at", "output"):
            lines.append(f"{name:11} {e.columns.get(name)}")
        for name in ("data", "state"):
            lines.append(f"{name} (as stored):")
            lines.append(f"  {e.columns.get(name)}")
    else:
        lines.append(f"{'attempts':11} {record.attempts}")
        lines.append(f"{'due_at':11} {record.due_at}")
        lines.append(f"{'created_at':11} {record.created_at}")
        lines.append(f"{'updated_at':11} {record.updated_at}")
        lines.append(f"{'output':11} {record.output}")
        lines.append("data:")
        lines.extend("  " + line for line in as_json(record.data).splitlines())
        lines.append("threads:")
        for thread in record.state.threads:
            lines.append(f"  {thread.id}: {thread.status} at {thread.step or '(start)'}")
            for event in thread.events:
                error = f" error={event.error}" if event.error else ""
                lines.append(f"    waits for {event.name} ({event.type}, {event.status}){error}")
    lines.append("history:")
    for h in history:
        lines.append(
            f"  {h['created_at']} {h['kind']} {h['name']} {h['actor']} "
            f"{json.dumps(h['input'], default=str)}"
        )
    return lines


def document(v: View, history: list[dict[str, Any]]) -> dict[str, Any]:
    """`show --json`: the row's columns, the execution state, the history, the summary,
    and `corrupt`. A corrupt row gives its columns as stored."""
    record = v.record
    if record is None:
        assert isinstance(v.entry, CorruptRecord)
        return {**v.entry.columns, "summary": None, "corrupt": v.problem, "history": history}
    return {
        **listed(v),
        "version": record.version,
        "attempts": record.attempts,
        "due_at": record.due_at,
        "output": record.output,
        "data": record.data,
        "state": record.state.to_data(),
        "history": history,
    }


def as_json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2, sort_keys=True)
