"""Imports point one way: `workflows` <- `callbacks` <- `bot`. The engine holds only the
engine (no wait condition, no workflow of the bot's), and the wait conditions need only the
engine. Read from the source with `ast`, every import counted: inside functions, under
`TYPE_CHECKING`, relative ones resolved."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.processes import ROOT

OURS = {"workflows", "callbacks", "bot", "tests", "benchmarks"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports (of module `module`), relative imports resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                package = package if is_package else package[:-1]
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
    return found


def our_imports(folder: str) -> dict[str, set[str]]:
    """For each module of `folder`, the packages of this repository it imports."""
    result: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        module = module_name(path)
        names = imports(path.read_text(), module, path.name == "__init__.py")
        result[module] = {n.split(".")[0] for n in names} & OURS
    return result


def test_the_engine_imports_neither_callbacks_nor_the_bot() -> None:
    found = our_imports("workflows")
    assert {"workflows.engine", "workflows.statements"} <= set(found)  # the walk sees them
    wrong = {m: sorted(names & {"callbacks", "bot"}) for m, names in found.items()}
    assert {m: names for m, names in wrong.items() if names} == {}


def test_callbacks_import_only_the_engine_and_themselves() -> None:
    found = our_imports("callbacks")
    assert found["callbacks.slack"] == {"callbacks", "workflows"}  # the walk sees them
    wrong = {m: sorted(names - {"callbacks", "workflows"}) for m, names in found.items()}
    assert {m: names for m, names in wrong.items() if names} == {}


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import bot.service\n", "workflows.x", {"bot.service"}),
        ("def f():\n    from callbacks import slack\n", "workflows.x", {"callbacks"}),
        (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from bot.blueprint import Parts\n",
            "workflows.x",
            {"typing", "bot.blueprint"},
        ),
        ("from . import engine\n", "workflows.testing.kit", {"workflows.testing"}),
        ("from ..store import SQLStore\n", "workflows.testing.kit", {"workflows.store"}),
        ("from .memory import Memory\n", "workflows.testing", {"workflows.testing.memory"}),
    ],
)
def test_the_walk_finds_every_kind_of_import(source: str, module: str, expected: set[str]) -> None:
    """A forbidden import hidden in a function or under TYPE_CHECKING is found too."""
    is_package = module == "workflows.testing"
    assert imports(source, module, is_package) == expected
