"""The statements a workflow definition is made of, and how each one resumes.

`definition()` is called again every time execution resumes, so the tree always reflects
the current data: conditions are plain values (`If(self.approved, ...)`), evaluated when the
tree is built. A thread's position is the name of a statement. Resuming walks the tree in
*seeking* mode, skipping everything until the statement with that name is found, and then
executes normally from there. The walk itself runs no user code and never awaits: it stops
at the first step to run (or the wait that blocks) and says so; the interpreter runs the
step, checkpoints, rebuilds the definition from the new data and walks again from after that
step. So a `For` condition is re-evaluated on fresh data at every iteration, exactly as in
gorchestrate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import DefinitionError
from workflows.types import Handler, StepFn

# --- outcomes of walking a statement -------------------------------------------------------


@dataclass(slots=True)
class Ran:
    """The walk reached the step `name` (or a WaitFor whose condition holds): run `fn`,
    checkpoint, then resume after `name`."""

    name: str
    fn: StepFn | None


@dataclass(slots=True)
class Blocked:
    """The thread reached the Wait `name` and blocks on its events."""

    name: str
    events: tuple[On, ...]


@dataclass(slots=True)
class BlockedFor:
    """The thread reached the WaitFor `name` whose condition does not hold yet."""

    name: str


@dataclass(slots=True)
class Spawned:
    """The Go statement `name` starts thread `thread_id`."""

    name: str
    thread_id: str


@dataclass(slots=True)
class Returned:
    value: Any


class _LoopSignal:
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return self.kind


BREAK = _LoopSignal("Break")
CONTINUE = _LoopSignal("Continue")

Outcome = Ran | Blocked | BlockedFor | Spawned | Returned | _LoopSignal | None


class Cursor:
    """Walk state: while `target` is set the walk is seeking the statement of that name.
    With `inclusive` the found statement itself runs (goto); otherwise the walk continues
    after it."""

    __slots__ = ("inclusive", "target")

    def __init__(self, target: str | None, inclusive: bool = False) -> None:
        self.target = target
        self.inclusive = inclusive

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


# --- statements ----------------------------------------------------------------------------


class Stmt:
    """A node of a definition tree. Built anew on every resume, so nodes are slotted and
    their constructors cheap: they store what they are given, and `check` (when the
    workflow is created, and whenever a walk trips over something) says what is wrong."""

    __slots__ = ()
    name: str = ""

    def walk(self, cur: Cursor) -> Outcome:
        raise NotImplementedError

    def children(self) -> Iterator[Stmt]:
        return iter(())


def _walk_all(stmts: tuple[Stmt, ...], cur: Cursor) -> Outcome:
    """Walk statements in order until one has an outcome."""
    for s in stmts:
        out = s.walk(cur)
        if out is not None:
            return out
    return None


class Section(Stmt):
    """`S(*stmts)`: statements run in order."""

    __slots__ = ("stmts",)

    def __init__(self, *stmts: Stmt) -> None:
        self.stmts = stmts

    def walk(self, cur: Cursor) -> Outcome:
        return _walk_all(self.stmts, cur)

    def children(self) -> Iterator[Stmt]:
        return iter(self.stmts)


S = Section  # gorchestrate's spelling of a sequence


class Step(Stmt):
    """Run code. Raising makes the engine retry the step later, with backoff."""

    __slots__ = ("fn", "name")

    def __init__(self, name: str, fn: StepFn) -> None:
        self.name = name
        self.fn = fn

    def walk(self, cur: Cursor) -> Outcome:
        if cur.target is not None and cur.skips(self.name):
            return None
        return Ran(self.name, self.fn)


class On(Stmt):
    """One event of a Wait: `handler` applies it; `stmts` run after it happened."""

    __slots__ = ("handler", "name", "stmts")

    def __init__(self, event: str, handler: Handler, *stmts: Stmt) -> None:
        self.name = event
        self.handler = handler
        self.stmts = stmts

    def walk(self, cur: Cursor) -> Outcome:
        if cur.target == self.name:
            cur.arrive()
        return _walk_all(self.stmts, cur)

    def children(self) -> Iterator[Stmt]:
        return iter(self.stmts)


class Wait(Stmt):
    """Block until exactly one of the events happens, then run that event's statements."""

    __slots__ = ("events", "name")

    def __init__(self, name: str, *events: On) -> None:
        if not events:
            raise DefinitionError(f"Wait {name!r} needs at least one On(...)")
        for e in events:
            if not isinstance(e, On):
                raise DefinitionError(f"Wait {name!r} takes On(...) events, got {e!r}")
        self.name = name
        self.events = events

    def walk(self, cur: Cursor) -> Outcome:
        if cur.target is not None:
            if cur.target == self.name:
                if not cur.arrive():
                    return None
            else:
                for on in self.events:
                    out = on.walk(cur)
                    if cur.target is None:  # found inside this event
                        return out
                return None
        return Blocked(self.name, self.events)

    def children(self) -> Iterator[Stmt]:
        return iter(self.events)


class _Branches(Stmt):
    """Shared walk of If and Switch: conditions pick a branch unless resuming inside one."""

    __slots__ = ("branches",)

    def __init__(self) -> None:
        self.branches: list[tuple[bool, tuple[Stmt, ...]]] = []

    def walk(self, cur: Cursor) -> Outcome:
        if cur.target is not None:
            for _, body in self.branches:
                out = _walk_all(body, cur)
                if cur.target is None:
                    return out
            return None
        for cond, body in self.branches:
            if cond:
                return _walk_all(body, cur)
        return None

    def children(self) -> Iterator[Stmt]:
        return (s for _, body in self.branches for s in body)


class If(_Branches):
    __slots__ = ("_closed",)

    def __init__(self, cond: Any, *stmts: Stmt) -> None:
        super().__init__()
        self.branches.append((bool(cond), stmts))
        self._closed = False

    def ElseIf(self, cond: Any, *stmts: Stmt) -> If:
        if self._closed:
            raise DefinitionError("ElseIf after Else")
        self.branches.append((bool(cond), stmts))
        return self

    def Else(self, *stmts: Stmt) -> If:
        if self._closed:
            raise DefinitionError("Else given twice")
        self.branches.append((True, stmts))
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

    __slots__ = ()

    def __init__(self, *cases: Case) -> None:
        super().__init__()
        for i, case in enumerate(cases):
            if not isinstance(case, Case):
                raise DefinitionError(f"Switch takes Case(...)/Default(...), got {case!r}")
            if isinstance(case, Default) and i != len(cases) - 1:
                raise DefinitionError("Default must be the last case of a Switch")
            self.branches.append((bool(case.cond), case.stmts))


class For(Stmt):
    """Loop while `cond` holds (re-evaluated on fresh data before every iteration)."""

    __slots__ = ("cond", "name", "stmts")

    def __init__(self, name: str, cond: Any, *stmts: Stmt) -> None:
        self.name = name
        self.cond = bool(cond)
        self.stmts = stmts

    def walk(self, cur: Cursor) -> Outcome:
        if cur.target is not None:
            if cur.target == self.name:
                if not cur.arrive():
                    return None
            else:
                out = _walk_all(self.stmts, cur)
                if cur.target is not None or out is BREAK:
                    return None
                if out is not None and out is not CONTINUE:
                    return out
                # The rest of the iteration ran without a step, so the definition (and
                # `cond`) is as fresh as it was when this walk began.
        if not self.cond:
            return None
        out = _walk_all(self.stmts, cur)
        if out is BREAK:
            return None
        if out is None or out is CONTINUE:
            raise DefinitionError(
                f"loop {self.name!r} finished an iteration without running a step or "
                "waiting, so its condition can never change: it would loop forever"
            )
        return out

    def children(self) -> Iterator[Stmt]:
        return iter(self.stmts)


class _Signal(Stmt):
    __slots__ = ()
    signal: _LoopSignal

    def walk(self, cur: Cursor) -> Outcome:
        return None if cur.target is not None else self.signal


class Break(_Signal):
    __slots__ = ()
    signal = BREAK


class Continue(_Signal):
    __slots__ = ()
    signal = CONTINUE


class Go(Stmt):
    """Start a parallel thread running `stmt`. `id` tells threads started by the same Go
    apart (evaluate it when the definition is built, e.g. `f"notify-{self.i}"`). `stmt`
    may also be a function of the thread id returning the statement."""

    __slots__ = ("name", "stmt", "thread_id")

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

    def walk(self, cur: Cursor) -> Outcome:
        if cur.skips(self.name):
            return None
        return Spawned(self.name, self.thread_id)

    def children(self) -> Iterator[Stmt]:
        return iter((self.stmt,)) if isinstance(self.stmt, Stmt) else iter(())


class WaitFor(Stmt):
    """Block until `cond` holds (checked again after every step of any thread), then call
    `fn` if given."""

    __slots__ = ("cond", "fn", "name")

    def __init__(self, name: str, cond: Any, fn: StepFn | None = None) -> None:
        self.name = name
        self.cond = bool(cond)
        self.fn = fn

    def walk(self, cur: Cursor) -> Outcome:
        if cur.skips(self.name):
            return None
        if not self.cond:
            return BlockedFor(self.name)
        if self.fn is not None:
            return Ran(self.name, self.fn)
        return None


class Return(Stmt):
    """End the thread. On the main thread it ends the workflow with `value` as its output;
    an exception instance ends it as failed with that message."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def walk(self, cur: Cursor) -> Outcome:
        return None if cur.target is not None else Returned(self.value)


# --- validation and lookup -----------------------------------------------------------------


@dataclass
class Index:
    """Named statements of one built definition."""

    root: Stmt
    named: dict[str, Stmt] = field(default_factory=dict)

    def events(self) -> dict[str, On]:
        return {n: s for n, s in self.named.items() if isinstance(s, On)}


def _walk(root: Stmt) -> Iterator[Stmt]:
    """Every statement of the tree, in document order (one stack, no nested generators:
    the engine looks statements up at run time). Anything else in the tree is an error."""
    if not isinstance(root, Stmt):
        raise DefinitionError(f"definition() must return a statement, got {root!r}")
    stack = [root]
    while stack:
        stmt = stack.pop()
        if not isinstance(stmt, Stmt):
            raise DefinitionError(f"expected statements, got {stmt!r}")
        yield stmt
        children = tuple(stmt.children())
        if children:
            stack.extend(reversed(children))


def _progresses(loop: For) -> bool:
    return any(isinstance(s, Step | Wait | WaitFor) for s in _walk(loop) if s is not loop)


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


def check(root: Stmt) -> None:
    """Raise `DefinitionError` if the tree holds anything but statements."""
    for _ in _walk(root):
        pass


def _with_go_bodies(root: Stmt) -> Iterator[Stmt]:
    """`_walk`, and into the bodies Go functions build, each called with the thread id its
    Go would start (a walk at run time does not: a body is built only for its thread)."""
    for stmt in _walk(root):
        yield stmt
        if isinstance(stmt, Go) and not isinstance(stmt.stmt, Stmt):
            try:
                body = stmt.body(stmt.thread_id)
            except DefinitionError:
                raise
            except Exception as e:
                raise DefinitionError(
                    f"Go {stmt.name!r}: building the body of thread {stmt.thread_id!r} "
                    f"raised {type(e).__name__}: {e}"
                ) from e
            yield from _with_go_bodies(body)


def validate(root: Stmt, handler_types: set[str]) -> None:
    """Check a whole definition before a workflow is created: what `build_index` checks,
    across the main thread and the body of every Go (functions of the thread id included),
    so a thread is never started into a definition that cannot run."""
    _check(Index(root), _with_go_bodies(root), handler_types)


def build_index(root: Stmt, handler_types: set[str] | None = None) -> Index:
    """Index named statements and validate the tree: only statements, unique names, loops
    that can make progress, handlers with a registered manager."""
    return _check(Index(root), _walk(root), handler_types)


def _check(index: Index, stmts: Iterator[Stmt], handler_types: set[str] | None) -> Index:
    for stmt in stmts:
        if isinstance(stmt, Step | Wait | On | For | Go | WaitFor):
            if not stmt.name:
                raise DefinitionError(f"{type(stmt).__name__} needs a name")
            if stmt.name in index.named:
                raise DefinitionError(f"duplicate statement name {stmt.name!r}")
            index.named[stmt.name] = stmt
        if isinstance(stmt, For) and not _progresses(stmt):
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
