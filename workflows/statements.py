"""The statements a workflow definition is made of, and how each one resumes.

`definition()` is called again every time execution resumes, so the tree always reflects
the current data: conditions are plain values (`If(self.approved, ...)`), evaluated when the
tree is built. A thread's position is the name of a statement. Resuming walks the tree in
*seeking* mode, skipping everything until the statement with that name is found, and then
executes normally from there. Every step that runs stops the walk: the engine checkpoints,
rebuilds the definition from the new data and resumes after that step. So a `For` condition
is re-evaluated on fresh data at every iteration, exactly as in gorchestrate.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import DefinitionError
from workflows.types import Handler, StepFn

# --- outcomes of walking a statement -------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """A step ran (or a WaitFor's function): checkpoint, then resume after `name`."""

    name: str


@dataclass(frozen=True)
class Blocked:
    """The thread reached the Wait `name` and blocks on its events."""

    name: str
    events: tuple[On, ...]


@dataclass(frozen=True)
class BlockedFor:
    """The thread reached the WaitFor `name` whose condition does not hold yet."""

    name: str


@dataclass(frozen=True)
class Spawned:
    """The Go statement `name` starts thread `thread_id`."""

    name: str
    thread_id: str


@dataclass(frozen=True)
class Returned:
    value: Any


class _LoopSignal:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return self.kind


BREAK = _LoopSignal("Break")
CONTINUE = _LoopSignal("Continue")

Outcome = Ran | Blocked | BlockedFor | Spawned | Returned | _LoopSignal | None


@dataclass
class Cursor:
    """Walk state: while `target` is set the walk is seeking the statement of that name.
    With `inclusive` the found statement itself runs (goto); otherwise the walk continues
    after it."""

    target: str | None
    inclusive: bool = False

    @property
    def seeking(self) -> bool:
        return self.target is not None

    def arrive(self) -> bool:
        """The sought statement is here: stop seeking; say whether it must run itself."""
        self.target = None
        return self.inclusive

    def skips(self, name: str) -> bool:
        """Whether a statement named `name` is skipped by this walk (it runs when the walk
        is executing, or when it is the goto target)."""
        if self.target is None:
            return False
        if self.target != name:
            return True
        return not self.arrive()


async def call(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


# --- statements ----------------------------------------------------------------------------


class Stmt:
    """A node of a definition tree."""

    name: str = ""

    async def run(self, cur: Cursor) -> Outcome:
        raise NotImplementedError

    def children(self) -> Iterator[Stmt]:
        return iter(())


class Section(Stmt):
    """`S(*stmts)`: statements run in order."""

    def __init__(self, *stmts: Stmt) -> None:
        for s in stmts:
            if not isinstance(s, Stmt):
                raise DefinitionError(f"S() takes statements, got {s!r}")
        self.stmts = stmts

    async def run(self, cur: Cursor) -> Outcome:
        for s in self.stmts:
            out = await s.run(cur)
            if out is not None:
                return out
        return None

    def children(self) -> Iterator[Stmt]:
        return iter(self.stmts)


def S(*stmts: Stmt) -> Section:
    return Section(*stmts)


class Step(Stmt):
    """Run code. Raising makes the engine retry the step later, with backoff."""

    def __init__(self, name: str, fn: StepFn) -> None:
        self.name = name
        self.fn = fn

    async def run(self, cur: Cursor) -> Outcome:
        if cur.skips(self.name):
            return None
        await call(self.fn)
        return Ran(self.name)


class On(Stmt):
    """One event of a Wait: `handler` applies it; `stmts` run after it happened."""

    def __init__(self, event: str, handler: Handler, *stmts: Stmt) -> None:
        self.name = event
        self.handler = handler
        self.body = Section(*stmts)

    async def run(self, cur: Cursor) -> Outcome:
        if cur.target == self.name:
            cur.arrive()
        return await self.body.run(cur)

    def children(self) -> Iterator[Stmt]:
        return iter((self.body,))


class Wait(Stmt):
    """Block until exactly one of the events happens, then run that event's statements."""

    def __init__(self, name: str, *events: On) -> None:
        if not events:
            raise DefinitionError(f"Wait {name!r} needs at least one On(...)")
        for e in events:
            if not isinstance(e, On):
                raise DefinitionError(f"Wait {name!r} takes On(...) events, got {e!r}")
        self.name = name
        self.events = events

    async def run(self, cur: Cursor) -> Outcome:
        if cur.seeking:
            if cur.target == self.name:
                if not cur.arrive():
                    return None
            else:
                for on in self.events:
                    out = await on.run(cur)
                    if not cur.seeking:
                        return out
                return None
        return Blocked(self.name, self.events)

    def children(self) -> Iterator[Stmt]:
        return iter(self.events)


class _Branches(Stmt):
    """Shared walk of If and Switch: conditions pick a branch unless resuming inside one."""

    def __init__(self) -> None:
        self.branches: list[tuple[bool, Section]] = []

    async def run(self, cur: Cursor) -> Outcome:
        if cur.seeking:
            for _, body in self.branches:
                out = await body.run(cur)
                if not cur.seeking:
                    return out
            return None
        for cond, body in self.branches:
            if cond:
                return await body.run(cur)
        return None

    def children(self) -> Iterator[Stmt]:
        return (body for _, body in self.branches)


class If(_Branches):
    def __init__(self, cond: Any, *stmts: Stmt) -> None:
        super().__init__()
        self.branches.append((bool(cond), Section(*stmts)))
        self._closed = False

    def ElseIf(self, cond: Any, *stmts: Stmt) -> If:
        if self._closed:
            raise DefinitionError("ElseIf after Else")
        self.branches.append((bool(cond), Section(*stmts)))
        return self

    def Else(self, *stmts: Stmt) -> If:
        if self._closed:
            raise DefinitionError("Else given twice")
        self.branches.append((True, Section(*stmts)))
        self._closed = True
        return self


@dataclass
class Case:
    cond: Any
    stmts: tuple[Stmt, ...]

    def __init__(self, cond: Any, *stmts: Stmt) -> None:
        self.cond = cond
        self.stmts = stmts


class Default(Case):
    def __init__(self, *stmts: Stmt) -> None:
        super().__init__(True, *stmts)


class Switch(_Branches):
    """The first case whose condition holds runs; `Default` must come last."""

    def __init__(self, *cases: Case) -> None:
        super().__init__()
        for i, case in enumerate(cases):
            if not isinstance(case, Case):
                raise DefinitionError(f"Switch takes Case(...)/Default(...), got {case!r}")
            if isinstance(case, Default) and i != len(cases) - 1:
                raise DefinitionError("Default must be the last case of a Switch")
            self.branches.append((bool(case.cond), Section(*case.stmts)))


class For(Stmt):
    """Loop while `cond` holds (re-evaluated on fresh data before every iteration)."""

    def __init__(self, name: str, cond: Any, *stmts: Stmt) -> None:
        self.name = name
        self.cond = bool(cond)
        self.body = Section(*stmts)

    async def run(self, cur: Cursor) -> Outcome:
        if cur.seeking:
            if cur.target == self.name:
                if not cur.arrive():
                    return None
            else:
                out = await self.body.run(cur)
                if cur.seeking or out is BREAK:
                    return None
                if out is not None and out is not CONTINUE:
                    return out
                # The rest of the iteration ran without a step, so the definition (and
                # `cond`) is as fresh as it was when this walk began.
        if not self.cond:
            return None
        out = await self.body.run(cur)
        if out is BREAK:
            return None
        if out is None or out is CONTINUE:
            raise DefinitionError(
                f"loop {self.name!r} finished an iteration without running a step or "
                "waiting, so its condition can never change: it would loop forever"
            )
        return out

    def children(self) -> Iterator[Stmt]:
        return iter((self.body,))


class _Signal(Stmt):
    signal: _LoopSignal

    async def run(self, cur: Cursor) -> Outcome:
        return None if cur.seeking else self.signal


class Break(_Signal):
    signal = BREAK


class Continue(_Signal):
    signal = CONTINUE


class Go(Stmt):
    """Start a parallel thread running `stmt`. `id` tells threads started by the same Go
    apart (evaluate it when the definition is built, e.g. `f"notify-{self.i}"`). `stmt`
    may also be a function of the thread id returning the statement."""

    def __init__(self, name: str, stmt: Stmt | Callable[[str], Stmt], id: str = "") -> None:
        self.name = name
        self.stmt = stmt
        self.thread_id = id or name

    def body(self, thread_id: str) -> Stmt:
        if isinstance(self.stmt, Stmt):
            return self.stmt
        body = self.stmt(thread_id)
        if not isinstance(body, Stmt):
            raise DefinitionError(f"Go {self.name!r}: the function must return a statement")
        return body

    async def run(self, cur: Cursor) -> Outcome:
        if cur.skips(self.name):
            return None
        return Spawned(self.name, self.thread_id)

    def children(self) -> Iterator[Stmt]:
        return iter((self.stmt,)) if isinstance(self.stmt, Stmt) else iter(())


class WaitFor(Stmt):
    """Block until `cond` holds (checked again after every step of any thread), then call
    `fn` if given."""

    def __init__(self, name: str, cond: Any, fn: StepFn | None = None) -> None:
        self.name = name
        self.cond = bool(cond)
        self.fn = fn

    async def run(self, cur: Cursor) -> Outcome:
        if cur.skips(self.name):
            return None
        if not self.cond:
            return BlockedFor(self.name)
        if self.fn is not None:
            await call(self.fn)
            return Ran(self.name)
        return None


class Return(Stmt):
    """End the thread. On the main thread it ends the workflow with `value` as its output;
    an exception instance ends it as failed with that message."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    async def run(self, cur: Cursor) -> Outcome:
        return None if cur.seeking else Returned(self.value)


# --- validation and lookup -----------------------------------------------------------------


@dataclass
class Index:
    """Named statements of one built definition."""

    root: Stmt
    named: dict[str, Stmt] = field(default_factory=dict)

    def events(self) -> dict[str, On]:
        return {n: s for n, s in self.named.items() if isinstance(s, On)}


def _walk(stmt: Stmt) -> Iterator[Stmt]:
    yield stmt
    for child in stmt.children():
        yield from _walk(child)


def _progresses(body: Stmt) -> bool:
    return any(isinstance(s, Step | Wait | WaitFor) for s in _walk(body))


def find(root: Stmt, name: str) -> Stmt | None:
    """The statement named `name` (a lookup at run time; `build_index` validated the tree
    when the workflow was created)."""
    for stmt in _walk(root):
        if stmt.name == name and isinstance(stmt, Step | Wait | On | For | Go | WaitFor):
            return stmt
    return None


def events(root: Stmt) -> dict[str, On]:
    """The `On` events of a tree by name (a lookup at run time)."""
    return {s.name: s for s in _walk(root) if isinstance(s, On)}


def build_index(root: Stmt, handler_types: set[str] | None = None) -> Index:
    """Index named statements and validate the tree: unique names, loops that can make
    progress, handlers with a registered manager."""
    if not isinstance(root, Stmt):
        raise DefinitionError(f"definition() must return a statement, got {root!r}")
    index = Index(root)
    for stmt in _walk(root):
        if isinstance(stmt, Step | Wait | On | For | Go | WaitFor):
            if not stmt.name:
                raise DefinitionError(f"{type(stmt).__name__} needs a name")
            if stmt.name in index.named:
                raise DefinitionError(f"duplicate statement name {stmt.name!r}")
            index.named[stmt.name] = stmt
        if isinstance(stmt, For) and not _progresses(stmt.body):
            raise DefinitionError(
                f"loop {stmt.name!r} has no Step, Wait or WaitFor in its body, so it can "
                "never block or change state"
            )
        if isinstance(stmt, On) and handler_types is not None:
            htype = getattr(stmt.handler, "type", None)
            if not isinstance(htype, str):
                raise DefinitionError(f"handler of event {stmt.name!r} has no `type`")
            if htype not in handler_types:
                raise DefinitionError(
                    f"event {stmt.name!r}: no callback manager for handler type {htype!r}"
                )
    return index
