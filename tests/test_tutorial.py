"""The README's "Write your own workflow": its blueprint and its tests are the files in
`examples/`, shown whole, and those tests pass."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.loading import load_blueprints
from tests.processes import ROOT

EXAMPLES = ROOT / "examples"
FILES = ["mycompany/refund.py", "test_refund.py"]


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield EXAMPLES
    for name in [m for m in sys.modules if m.startswith(("mycompany", "test_refund"))]:
        del sys.modules[name]


@pytest.mark.parametrize("name", FILES)
def test_the_readme_shows_each_example_file_whole(name: str) -> None:
    source = (EXAMPLES / name).read_text()
    assert f"```python\n{source}```" in (ROOT / "README.md").read_text()


def test_the_example_blueprint_loads_beside_the_shipped_ones(examples: Path) -> None:
    loaded = load_blueprints("bot.blueprints.approval,mycompany.refund")
    assert [launch.name for launch in loaded.launches] == ["/approval", "/refund"]


async def test_the_example_tests_pass(examples: Path) -> None:
    module = importlib.import_module("test_refund")
    tests = [fn for name, fn in inspect.getmembers(module) if name.startswith("test_")]
    assert len(tests) == 3
    for test in tests:
        await test()
